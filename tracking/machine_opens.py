"""Which opens (and clicks) a machine made rather than a reader.

Without IP addresses (we never store them) the user agent and the time since
sending are what we have:

- Apple Mail Privacy Protection fetches every image through Apple's proxy when
  the message is delivered, whether or not anyone reads it; its requests carry
  the bare user agent "Mozilla/5.0" and nothing after it.
- Gmail (GoogleImageProxy) and Yahoo (YahooMailProxy) fetch images through their
  own proxies, which may prefetch and cache: the request says nothing about a reader.
- Security scanners and link checkers of receiving systems, and generic HTTP
  clients, announce themselves in the user agent.
- Anything within MACHINE_OPEN_SECONDS of sending is a scanner at delivery time:
  no person opens a message that fast.

Machine opens are kept (an Event with is_machine) but left out of the open rate.
"""

import re

from django.conf import settings

APPLE_MPP_USER_AGENTS = ("Mozilla/5.0",)
PROXY_MARKERS = ("GoogleImageProxy", "ggpht.com", "YahooMailProxy", "Yahoo! Slurp")
SCANNER_MARKERS = (
    "bot",
    "crawler",
    "spider",
    "preview",
    "scanner",
    "Barracuda",
    "Mimecast",
    "Proofpoint",
    "Symantec",
    "MessageLabs",
    "Trend Micro",
    "TrendMicro",
    "Forcepoint",
    "Zscaler",
    "FireEye",
    "SafeLinks",
    "Microsoft Office Existence Discovery",
    "Microsoft Office Protocol Discovery",
    "LinkCheck",
    "urlscan",
    "HeadlessChrome",
    "PhantomJS",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "curl/",
    "Wget",
    "Go-http-client",
    "okhttp",
    "Java/",
    "libwww-perl",
    "Apache-HttpClient",
    "node-fetch",
    "axios",
)
_SCANNER = re.compile("|".join(re.escape(m) for m in SCANNER_MARKERS + PROXY_MARKERS), re.IGNORECASE)


def machine_open_seconds() -> float:
    return getattr(settings, "TRACKING_MACHINE_OPEN_SECONDS", 5)


def is_machine_user_agent(user_agent: str | None) -> bool:
    user_agent = (user_agent or "").strip()
    if user_agent in APPLE_MPP_USER_AGENTS:
        return True
    return bool(_SCANNER.search(user_agent))


def kind_of_agent(user_agent: str | None) -> str:
    """'apple-mpp', 'proxy', 'scanner' or '' (a reader, as far as we can tell)."""
    user_agent = (user_agent or "").strip()
    if user_agent in APPLE_MPP_USER_AGENTS:
        return "apple-mpp"
    if any(m.lower() in user_agent.lower() for m in PROXY_MARKERS):
        return "proxy"
    if _SCANNER.search(user_agent):
        return "scanner"
    return ""
