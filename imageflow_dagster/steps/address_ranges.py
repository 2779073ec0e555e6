"""Which addresses a webhook may not reach: one table of the special-purpose ranges of IANA's IPv4 and IPv6
registries, so the answer does not depend on the `ipaddress` flags (`is_private`, `is_global`) of the Python
version that runs it, which changed between releases and missed ranges such as fec0::/10 and 6to4."""

import ipaddress

_V4_RANGES = (
    ("0.0.0.0/8", "unspecified"),  # "this network"
    ("10.0.0.0/8", "private"),
    ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
    ("172.16.0.0/12", "private"),
    ("192.0.0.0/24", "reserved for IETF protocols"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "6to4 relay anycast (deprecated)"),
    ("192.168.0.0/16", "private"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("255.255.255.255/32", "broadcast"),
    ("240.0.0.0/4", "reserved"),
)
# Ranges outside 2000::/3 are listed for their names: the rule below refuses all of that space anyway.
_V6_RANGES = (
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),
    ("100::/64", "discard-only"),
    # All of it, Teredo included: the few globally reachable sub-ranges are not worth a webhook's risk.
    ("2001::/23", "reserved for IETF protocols"),
    ("2001:db8::/32", "documentation"),
    # The IPv4 address inside a 6to4 address may be anything, and 6to4 relays are deprecated (RFC 7526).
    ("2002::/16", "6to4 (deprecated)"),
    ("3fff::/20", "documentation"),
    ("5f00::/16", "segment routing (SRv6)"),
    ("fc00::/7", "private"),  # unique local
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)
# These carry an IPv4 address in their last 32 bits and reach it: the IPv4 address decides.
_V4_CARRIERS = (ipaddress.ip_network("::ffff:0:0/96"), ipaddress.ip_network("64:ff9b::/96"))
# IANA allocates global unicast IPv6 from 2000::/3 only; anything outside it is unassigned or special.
_V6_GLOBAL_UNICAST = ipaddress.ip_network("2000::/3")

_V4_TABLE = tuple((ipaddress.ip_network(net), reason) for net, reason in _V4_RANGES)
_V6_TABLE = tuple((ipaddress.ip_network(net), reason) for net, reason in _V6_RANGES)


def refusal_reason(address: str) -> str | None:
    """Why `address` is not a public internet address, or None when it is."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone id
    if ip.version == 6 and any(ip in carrier for carrier in _V4_CARRIERS):
        ip = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    table = _V4_TABLE if ip.version == 4 else _V6_TABLE
    reason = next((reason for network, reason in table if ip in network), None)
    if reason is None and ip.version == 6 and ip not in _V6_GLOBAL_UNICAST:
        return "not a global unicast address (outside 2000::/3)"
    return reason
