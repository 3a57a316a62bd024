"""SMTP reply classification: what an answer means for the email and the account.

The basic code says success, temporary or permanent; the enhanced status code
in the reply text (RFC 3463, e.g. "5.1.1") says whose problem it is.
"""

import re
from dataclasses import dataclass
from enum import Enum

ENHANCED_CODE = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")
# Providers' own words for "slow down" (Postfix: "too much mail from"; Gmail: "rate limited";
# Outlook: "too many", "throttl"; others: "quota", "try again later").
RATE_WORDS = re.compile(
    r"too much mail|too many (messages|mails?|connections|requests|sessions)|rate.?limit|throttl|quota"
    r"|slow down|try again later|exceeded"
)


class Verdict(str, Enum):
    SENT = "sent"
    DEFERRED = "deferred"  # throttled or transient: retry by the ladder
    ACCOUNT = "account"  # the account, not the recipient: pause it, keep the email
    BOUNCED = "bounced"  # the address: fail and suppress the contact
    REJECTED = "rejected"  # the message: fail
    UNKNOWN = "unknown"  # connection lost after DATA: retry once, maybe a duplicate


@dataclass(frozen=True)
class Classification:
    verdict: Verdict
    code: int | None
    enhanced: str
    text: str

    @property
    def throttled(self) -> bool:
        return self.verdict == Verdict.DEFERRED

    @property
    def rate_limited(self) -> bool:
        """A temporary refusal that says the account sends too fast (the rate it sends at is the
        cause), not one about this recipient or a passing fault: only these slow the account."""
        lowered = self.text.lower()
        if self.verdict != Verdict.DEFERRED or "greylist" in lowered or "graylist" in lowered:
            return False  # greylisting delays one sender/recipient pair, whatever the rate
        return self.code in (421, 454) or self.enhanced.startswith("4.7.") or bool(RATE_WORDS.search(lowered))


def enhanced_code(text: str) -> str:
    match = ENHANCED_CODE.search(text or "")
    return ".".join(match.groups()) if match else ""


def classify(code: int | None, text: str | bytes) -> Classification:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else (text or "")
    enhanced = enhanced_code(text)
    lowered = text.lower()
    if code is None:
        verdict = Verdict.UNKNOWN
    elif 200 <= code < 300:
        verdict = Verdict.SENT
    elif 400 <= code < 500 or enhanced.startswith("4."):
        verdict = Verdict.DEFERRED
    elif code in (530, 534, 535) or (enhanced in ("5.7.0", "5.7.8", "5.7.9") and _is_auth(lowered)):
        verdict = Verdict.ACCOUNT  # authentication
    elif enhanced == "5.4.5" or ("quota" in lowered and (enhanced == "5.2.0" or code == 554)):
        verdict = Verdict.ACCOUNT  # the account's sending quota
    elif enhanced in ("5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.2.1") or (
        code in (550, 551, 553) and not enhanced and _looks_like_unknown_user(lowered)
    ):
        verdict = Verdict.BOUNCED
    elif 500 <= code < 600:
        verdict = Verdict.REJECTED
    else:
        verdict = Verdict.UNKNOWN
    return Classification(verdict=verdict, code=code, enhanced=enhanced, text=text)


def _is_auth(lowered: str) -> bool:
    return "auth" in lowered or "credential" in lowered or "password" in lowered or "login" in lowered


def _looks_like_unknown_user(lowered: str) -> bool:
    return any(
        word in lowered
        for word in ("no such user", "unknown user", "user unknown", "does not exist", "mailbox unavailable")
    )
