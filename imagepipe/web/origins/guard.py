"""Which addresses an origin may be fetched from: the guard against SSRF.

Unspecified, loopback, private, link-local, shared (CGNAT), multicast,
broadcast and reserved addresses are refused, and so is an IPv6 address
carrying one of them, unless the configuration's ``allow`` names the host
or a network holding the address.  Pure: no I/O, no Twisted.
"""

import functools
import ipaddress
import re

_V4_REFUSED = (
    ("0.0.0.0/8", "unspecified"),
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared (CGNAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved"),
    ("192.0.2.0/24", "reserved"),
    ("192.88.99.0/24", "reserved"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "reserved"),
    ("198.51.100.0/24", "reserved"),
    ("203.0.113.0/24", "reserved"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)
_V6_REFUSED = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "reserved"),  # local-use NAT64, translating to anything
    ("100::/64", "reserved"),
    ("2001::/23", "reserved"),  # Teredo (client address hidden), ORCHID, ...
    ("2001:db8::/32", "reserved"),
    ("fc00::/7", "private"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "private"),
    ("ff00::/8", "multicast"),
)
_REFUSED = tuple((ipaddress.ip_network(net), reason) for net, reason in _V4_REFUSED + _V6_REFUSED)
_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_V4_COMPATIBLE = ipaddress.ip_network("::/96")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_HOST_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")


def refused_address(address, allow=(), host=None):
    """Why an origin at ``address`` may not be fetched from, or None when it may.

    ``address`` is an IP address (text or ``ipaddress`` object) that ``host``
    resolved to.  Unspecified, loopback, private, link-local, shared (CGNAT),
    multicast, broadcast and reserved addresses are refused, and so is an
    IPv6 address carrying one of them (IPv4-mapped or -compatible, 6to4,
    NAT64), unless ``allow`` names ``host`` or holds a network with the
    address or the IPv4 address inside it.  The reason never shows the
    address.
    """
    address = ipaddress.ip_address(address)
    names, networks = allowance(tuple(allow))
    if host is not None and _host_key(host) in names:
        return None
    inner = _embedded_ipv4(address)
    if any(candidate in network for network in networks for candidate in (address, inner)
           if candidate is not None):
        return None
    return _reason(address)


def _reason(address):
    for network, reason in _REFUSED:
        if address in network:
            return f"{reason} address"
    if address.version == 4:
        return None
    inner = _embedded_ipv4(address)
    if inner is not None:
        reason = _reason(inner)
        return reason and f"{reason} inside an IPv6 address"
    if address not in _GLOBAL_UNICAST:
        return "reserved address"
    return None


def _embedded_ipv4(address):
    """The IPv4 address an IPv6 one carries (mapped, compatible, 6to4, NAT64), or None."""
    if address.version == 4:
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64 or address in _V4_COMPATIBLE:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


@functools.lru_cache(maxsize=32)
def allowance(allow):
    """``allow`` as (host names, networks); ValueError for an entry that is neither."""
    names, networks = set(), []
    for entry in allow:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
            continue
        except (TypeError, ValueError):
            pass
        name = _host_key(entry) if isinstance(entry, str) else ""
        if not _HOST_NAME.match(name) or name.rsplit(".", 1)[-1].isdigit():
            raise ValueError(f"allow: {entry!r} is neither a host name nor a network "
                             f"like 10.0.0.0/8")
        names.add(name)
    return frozenset(names), tuple(networks)


def _host_key(host):
    return host.lower().rstrip(".")
