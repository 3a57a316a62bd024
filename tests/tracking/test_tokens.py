from django.test import override_settings

from tracking import tokens


def test_a_token_carries_ids_only_and_reads_back():
    token = tokens.click_token(42, 7)
    assert tokens.read_click(token) == (42, 7)
    assert tokens.read_open(tokens.open_token(42)) == 42
    assert tokens.read_unsubscribe(tokens.unsubscribe_token(42)) == 42
    assert "@" not in token and "example" not in token


def test_a_token_of_one_purpose_is_refused_for_another():
    open_token, unsubscribe = tokens.open_token(5), tokens.unsubscribe_token(5)
    assert tokens.read_unsubscribe(open_token) is None
    assert tokens.read_open(unsubscribe) is None
    assert tokens.read_click(open_token) is None
    assert tokens.read_open(tokens.click_token(5, 1)) is None


def test_altered_forged_and_malformed_tokens_are_refused():
    token = tokens.click_token(42, 7)
    payload, signature = token.split(".")
    assert tokens.read_click(f"42-8.{signature}") is None
    assert tokens.read_click(f"{payload}.{signature[:-1]}A") is None
    for junk in ("", "abc", "42", "42-7", ".", "42-7.", "x" * 5000, "-1.abc", "🙂.🙂"):
        assert tokens.read_click(junk) is None
        assert tokens.read_open(junk) is None


def test_tokens_signed_with_another_key_are_refused_and_old_keys_still_read(settings):
    token = tokens.open_token(9)
    with override_settings(SECRET_KEY="another-key-entirely-another-key-entirely", SECRET_KEY_FALLBACKS=[]):
        assert tokens.read_open(token) is None
    with override_settings(
        SECRET_KEY="another-key-entirely-another-key-entirely", SECRET_KEY_FALLBACKS=[settings.SECRET_KEY]
    ):
        assert tokens.read_open(token) == 9


def test_tokens_are_exactly_what_djangos_signer_writes(settings):
    # make() derives the HMAC key once per purpose and secret; the token must stay Django's, so
    # Signer.unsign (which read() uses) and links in mail already sent keep working.
    for secret in ("first-secret-key-for-the-test", "ünïcode-second-secret-key"):
        settings.SECRET_KEY = secret
        for purpose, ids in [(tokens.OPEN, (1,)), (tokens.UNSUBSCRIBE, (987654321,)), (tokens.CLICK, (42, 7))]:
            payload = "-".join(str(i) for i in ids)
            assert tokens.make(purpose, *ids) == tokens._signer(purpose).sign(payload)
            assert tokens.read(purpose, tokens.make(purpose, *ids), parts=len(ids)) == ids
