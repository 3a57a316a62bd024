"""Who a request came from, for rate limits and lockouts: the one place that reads it.

Behind a reverse proxy REMOTE_ADDR is the proxy's address, so every visitor would share one
bucket. The client is then read from X-Forwarded-For, but only through proxies the operator
names in TRUSTED_PROXIES (addresses or networks): the header is walked from the right, past
each trusted hop, and the first address not trusted is the client. A header sent by a client
that did not come through a trusted proxy is ignored, so nobody can choose their own bucket.
"""

import ipaddress
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=8)
def _networks(proxies: tuple[str, ...]):
    return tuple(ipaddress.ip_network(p, strict=False) for p in proxies)


def _trusted(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in _networks(tuple(settings.TRUSTED_PROXIES)))


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or the first untrusted hop of X-Forwarded-For when
    REMOTE_ADDR is a trusted proxy. '' when nothing usable is there."""
    remote = (request.META.get("REMOTE_ADDR") or "").strip()
    if not settings.TRUSTED_PROXIES or not _trusted(remote):
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    for hop in reversed(hops):
        if not _trusted(hop):
            return hop if _parses(hop) else remote
    return hops[0] if hops and _parses(hops[0]) else remote


def _parses(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


def rate_limit_key(request) -> str:
    """The client as a rate limit counts it: an IPv4 address, or an IPv6 address's /64 (one
    subscriber line usually holds a whole /64, so counting single IPv6 addresses counts nothing)."""
    address = client_ip(request)
    bucket = _bucket(address)
    return str(bucket) if bucket is not None else (address or "unknown")


def lockout_address(request) -> str | None:
    """The client as login lockouts count it (django-axes' AXES_CLIENT_IP_CALLABLE): the bucket of
    rate_limit_key written as one address, an IPv6 /64 as its first address, since axes stores an
    address field. None when the request names no usable address."""
    bucket = _bucket(client_ip(request))
    if bucket is None:
        return None
    return str(bucket.network_address) if isinstance(bucket, ipaddress.IPv6Network) else str(bucket)


def _bucket(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Network | None:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv4Address):
        return ip
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ipaddress.IPv6Network((ip, 64), strict=False)
