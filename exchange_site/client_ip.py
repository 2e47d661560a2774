"""The address a request came from, trusting exactly as many proxies as the settings say.

``X-Forwarded-For`` is whatever the client sent, with each proxy on the way
appending the address it saw.  So only the last ``NUM_PROXIES`` entries were
written by our own proxies; anything left of them is the client's to forge.
With ``REST_FRAMEWORK["NUM_PROXIES"]`` unset or 0 (development, tests, a
process facing the internet) the header is ignored and ``REMOTE_ADDR`` is the
client.  With N (production sets 1: nginx appends ``$remote_addr``) the client
is the N-th entry from the right.

DRF's own ``get_ident`` uses the *whole* header when ``NUM_PROXIES`` is unset,
which is fine for a rate-limit bucket but not for an IP allowlist: a client
could name any address.  Allowlists therefore use this function only.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence

from rest_framework.settings import api_settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_proxies() -> int:
    return int(api_settings.NUM_PROXIES or 0)


def client_ip_from(*, remote_addr: str, forwarded_for: str, proxies: int | None = None) -> IPAddress | None:
    """The client's address, or None when it cannot be read (then no allowlist admits the request)."""
    proxies = trusted_proxies() if proxies is None else proxies
    candidate = remote_addr
    if proxies > 0 and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",")]
        # Fewer hops than proxies: the request skipped a proxy; the nearest hop is all we can trust.
        candidate = hops[-proxies] if len(hops) >= proxies else remote_addr
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def client_ip(meta: Mapping[str, str]) -> IPAddress | None:
    """The client's address from a Django request's ``META``."""
    return client_ip_from(remote_addr=meta.get("REMOTE_ADDR", ""), forwarded_for=meta.get("HTTP_X_FORWARDED_FOR", ""))


def parse_allowlist(entries: Sequence[str]) -> list[str]:
    """Addresses or networks ("203.0.113.7", "10.0.0.0/24", "2001:db8::/48") in normal CIDR form.

    Raises ``ValueError`` naming the first entry that is neither.  Host bits set
    in a network ("10.0.0.5/24") are refused rather than silently widened.
    """
    networks = []
    for entry in entries:
        text = entry.strip()
        if not text:
            continue
        try:
            networks.append(str(ipaddress.ip_network(text, strict=True)))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP address or network (e.g. 203.0.113.7 or 10.0.0.0/24).") from None
    return sorted(set(networks), key=networks.index)


def allowed(ip: IPAddress | None, allowlist: Sequence[str]) -> bool:
    """True when ``allowlist`` is empty (no restriction) or ``ip`` lies in one of its networks."""
    if not allowlist:
        return True
    if ip is None:
        return False
    return any(ip in ipaddress.ip_network(network) for network in allowlist)
