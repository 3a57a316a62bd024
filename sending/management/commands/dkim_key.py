from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from sending import crypto, dkim, services
from sending.models import SmtpAccount

ALGORITHMS = {"rsa": SmtpAccount.DkimAlgorithm.RSA, "ed25519": SmtpAccount.DkimAlgorithm.ED25519}


class Command(BaseCommand):
    help = (
        "Print the DKIM TXT record of an SMTP account, making its key first if it has none (or with --rotate, "
        "a new one). Publish the record, then turn signing on with --enable or on the account's page."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("account_id", type=int)
        parser.add_argument("--domain", help="the domain to sign for: the From address's domain or a parent of it")
        parser.add_argument("--selector", help="the name the key is published under, such as mail2026")
        parser.add_argument("--algorithm", choices=sorted(ALGORITHMS), default="rsa", help="rsa (2048 bits) or ed25519")
        parser.add_argument("--rotate", action="store_true", help="replace the account's key with a new one")
        parser.add_argument("--enable", action="store_true", help="sign the account's messages from now on")

    def handle(self, *args: Any, **options: Any) -> None:
        account = SmtpAccount.objects.filter(pk=options["account_id"]).first()
        if account is None:
            raise CommandError(f"No SMTP account {options['account_id']}.")
        try:
            if account.has_dkim_key and not options["rotate"]:
                record = dkim.dkim_record(account)
                self._say_what_was_kept(account, options)
            else:
                record = self._new_key(account, options)
            if options["enable"]:
                services.set_dkim_signing(account=account, enabled=True)
        except (dkim.DkimSetupError, dkim.DkimKeyError, crypto.DecryptionError) as exc:
            raise CommandError(str(exc)) from exc
        assert record is not None  # the account has a key now
        self.stdout.write(f"Name:  {record.name}")
        self.stdout.write("Type:  TXT")
        self.stdout.write(f"Value: {record.value}")
        self.stdout.write(f"Zone file: {record.zone_line}")
        state = "signs its messages" if account.dkim_enabled else "does not sign yet (--enable, or its page)"
        self.stdout.write(f"SMTP account {account.pk} ({account.name}) {state}.")

    def _new_key(self, account: SmtpAccount, options: dict[str, Any]) -> dkim.DkimRecord:
        if not options["domain"] or not options["selector"]:
            raise CommandError("Give --domain and --selector for the new key.")
        return services.generate_dkim_key(
            account=account,
            domain=options["domain"],
            selector=options["selector"],
            algorithm=ALGORITHMS[options["algorithm"]],
            now=timezone.now(),
        )

    def _say_what_was_kept(self, account: SmtpAccount, options: dict[str, Any]) -> None:
        asked = {
            "domain": options["domain"] and dkim.normalise_domain(options["domain"]),
            "selector": options["selector"] and dkim.normalise_selector(options["selector"]),
        }
        kept = {"domain": account.dkim_domain, "selector": account.dkim_selector}
        if any(asked[name] and asked[name] != kept[name] for name in kept):
            self.stderr.write(
                f"The account keeps its key for {account.dkim_selector}._domainkey.{account.dkim_domain}; "
                "pass --rotate to make a new one for the domain and selector given."
            )
