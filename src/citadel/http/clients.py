"""Who sent a request: the key its address counts under, and its address when it came through trusted proxies.

``client_key`` names the address a rate limit or a per-address connection count charges: an IPv4 address as it
is, an IPv6 address as its /64 network (one host is usually given a whole /64, so keying single addresses
would let it cycle through 2^64 of them), an IPv4-mapped IPv6 address as its IPv4 address.

``TrustedProxies`` rewrites an ASGI scope's ``client`` and ``scheme`` from the ``Forwarded`` header (RFC 7239),
or from ``X-Forwarded-For`` and ``X-Forwarded-Proto`` when there is no ``Forwarded`` header, and only when the
direct peer is one of the proxies you trust: anyone else could claim any address in those headers. Each proxy
appends the address it received the request from, so only the rightmost entries are vouched for: the list is
walked from the right, past the addresses of trusted proxies, and the first other address is the client.
Anything to its left was written by the client itself. The headers your proxies do not write must be removed
by them (a ``Forwarded`` header, when present, is the one read).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, MutableMapping
from typing import Any

from citadel.errors import ConfigurationError

__all__ = ["TrustedProxies", "client_key"]

Scope = MutableMapping[str, Any]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN = "unknown"
"""The key of a request whose address is missing or not an IP address (a Unix socket peer, say)."""

# The caches are keyed by addresses the server or a trusted proxy reports: bounded, and cleared when full,
# which is the simplest eviction and costs only a re-parse of the addresses still in use.
_CACHE_SIZE = 4096
# The longest address text worth parsing: a full IPv4-mapped IPv6 address with an interface zone fits.
_MAX_ADDRESS = 100
# Forwarded entries read per request, from the right; the rest of a longer list is ignored.
MAX_HOPS = 32
# Parameters read in one Forwarded element: RFC 7239 defines four (for, by, host, proto).
_MAX_PAIRS = 16

_PORT = re.compile(r"[0-9]{1,5}|_[A-Za-z0-9._-]{1,32}")  # RFC 7239 node-port: a number or an obfuscated name
_SCHEMES = frozenset({"http", "https"})

_keys: dict[str, str] = {}
_nodes: dict[str, str] = {}  # header entry -> its address, "" when it is none


def client_key(host: str | None) -> str:
    """Return the rate-limit key of a client address: IPv4 as is, IPv6 as its /64, ``"unknown"`` if not an IP.

    Repeats cost one dict lookup: results are cached in a bounded table.
    """
    if host is None:
        return UNKNOWN
    key = _keys.get(host)
    if key is None:
        address = parse_address(host)
        if address is None:
            key = UNKNOWN
        elif address.version == 4:
            key = str(address)
        else:
            key = f"{ipaddress.IPv6Address(int(address) >> 64 << 64)}/64"
        if len(host) <= _MAX_ADDRESS:  # longer text is never an address: not worth a cache entry
            if len(_keys) >= _CACHE_SIZE:
                _keys.clear()
            _keys[host] = key
    return key


def parse_address(text: str) -> IPAddress | None:
    """Return the IP address ``text`` names, an IPv4-mapped IPv6 address as IPv4, without any ``%zone``;
    None when it is not an IP address."""
    if len(text) > _MAX_ADDRESS:
        return None
    host, _, _zone = text.partition("%")  # the zone names a local interface, not another host
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _node_address(node: str) -> str | None:
    """Return the address of a Forwarded ``for=`` node or an X-Forwarded-For entry, None for anything else.

    Accepts ``203.0.113.7``, ``203.0.113.7:4711``, ``[2001:db8::1]``, ``[2001:db8::1]:4711`` and a bare IPv6
    address; ``unknown`` and obfuscated names (``_hidden``) are not addresses.
    """
    address = _nodes.get(node)
    if address is None:
        address = _parse_node(node) or ""
        if len(node) <= _MAX_ADDRESS:
            if len(_nodes) >= _CACHE_SIZE:
                _nodes.clear()
            _nodes[node] = address
    return address or None


def _parse_node(node: str) -> str | None:
    if node.startswith("["):
        end = node.find("]")
        port = node[end + 1 :]
        if end < 0 or (port and not (port[0] == ":" and _PORT.fullmatch(port, 1))):
            return None
        host = node[1:end]
    elif node.count(":") == 1:
        host, _, port = node.partition(":")
        if not _PORT.fullmatch(port):
            return None
    else:
        host = node
    address = parse_address(host)
    return None if address is None else str(address)


def _forwarded_hops(value: str) -> list[tuple[str | None, str | None]]:
    """Return the (address, scheme) of each of the last ``MAX_HOPS`` elements of a Forwarded header.

    Commas and semicolons are not looked for inside quoted strings: the elements proxies write (addresses,
    ports, schemes) never hold them, and a misread element only has no address, which ends the walk early.
    """
    elements = value.rsplit(",", MAX_HOPS)
    if len(elements) > MAX_HOPS:
        del elements[0]  # everything before the last MAX_HOPS elements, unsplit
    hops: list[tuple[str | None, str | None]] = []
    for element in elements:
        address = scheme = None
        if element.count(";") >= _MAX_PAIRS:  # no proxy writes that many: garbage, not worth a loop
            hops.append((None, None))
            continue
        named = 0  # an element naming its client twice is malformed: it names none
        for pair in element.split(";"):
            name, equals, raw = pair.partition("=")
            if not equals:
                continue
            raw = raw.strip()
            if len(raw) >= 2 and raw[0] == raw[-1] == '"':
                raw = raw[1:-1].replace("\\", "")  # quoted-pair: a backslash escapes the next character
            name = name.strip().lower()
            if name == "for":
                named += 1
                address = _node_address(raw) if named == 1 else None
            elif name == "proto":
                scheme = raw.lower()
        hops.append((address, scheme))
    return hops


def _listed(value: str) -> list[str]:
    """Return the last ``MAX_HOPS`` entries of a comma-separated header, stripped."""
    entries = value.rsplit(",", MAX_HOPS)
    if len(entries) > MAX_HOPS:
        del entries[0]
    return [entry.strip() for entry in entries]


def _forwarded_for_hops(forwarded_for: str, forwarded_proto: str | None) -> list[tuple[str | None, str | None]]:
    """Pair each X-Forwarded-For entry with the X-Forwarded-Proto entry at the same place from the right."""
    addresses = _listed(forwarded_for)
    schemes = _listed(forwarded_proto) if forwarded_proto is not None else []
    offset = len(schemes) - len(addresses)
    return [
        (_node_address(entry), schemes[i + offset].lower() if i + offset >= 0 else None)
        for i, entry in enumerate(addresses)
    ]


class TrustedProxies:
    """The proxies whose ``Forwarded`` or ``X-Forwarded-For`` headers are believed; nobody else's are.

    Built from addresses and networks (``"10.0.0.0/8"``, ``"127.0.0.1"``, ``"::1"``, ``"fd00::/8"``).

    Raises:
        ConfigurationError: an entry is not an IP address or network, or a network has host bits set.
    """

    def __init__(self, networks: Iterable[str] = ()) -> None:
        if isinstance(networks, str | bytes):
            raise ConfigurationError(
                f"trusted proxies {networks!r} is one string; give a list of addresses or networks, "
                "such as ['10.0.0.0/8', '::1']"
            )
        parsed: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        for entry in networks:
            parsed.append(_network(entry))
        self.networks = tuple(parsed)
        self._trusted: dict[str, bool] = {}

    def __repr__(self) -> str:
        return f"TrustedProxies({[str(network) for network in self.networks]!r})"

    def trusts(self, host: str) -> bool:
        """Return whether ``host`` is the address of a trusted proxy (False when it is not an IP address)."""
        trusted = self._trusted.get(host)
        if trusted is None:
            address = parse_address(host)
            trusted = address is not None and any(address in network for network in self.networks)
            if len(host) <= _MAX_ADDRESS:
                if len(self._trusted) >= _CACHE_SIZE:
                    self._trusted.clear()
                self._trusted[host] = trusted
        return trusted

    def resolve(self, scope: Scope) -> None:
        """Set ``scope["client"]`` (and ``scope["scheme"]``) to what the trusted proxies in front report.

        Leaves the scope as it is when the peer is not a trusted proxy, when the headers name no client, or
        when the walk from the right meets an entry that is not an IP address (``unknown``, an obfuscated
        name, garbage) before an untrusted address: what lies left of it cannot be checked. When every entry
        is a trusted proxy, the leftmost one read is the client. Never raises on header content.
        """
        if not self.networks:
            return
        peer = scope.get("client")
        if not peer or not self.trusts(peer[0]):
            return
        forwarded: list[bytes] = []
        forwarded_for: list[bytes] = []
        forwarded_proto: list[bytes] = []
        for name, value in scope.get("headers", ()):
            if name == b"forwarded":
                forwarded.append(value)
            elif name == b"x-forwarded-for":
                forwarded_for.append(value)
            elif name == b"x-forwarded-proto":
                forwarded_proto.append(value)
        if forwarded:
            hops = _forwarded_hops(b",".join(forwarded).decode("latin-1"))
        elif forwarded_for:
            proto = b",".join(forwarded_proto).decode("latin-1") if forwarded_proto else None
            hops = _forwarded_for_hops(b",".join(forwarded_for).decode("latin-1"), proto)
        else:
            return
        client: tuple[str | None, str | None] | None = None
        for hop in reversed(hops):
            if hop[0] is None:
                return
            client = hop
            if not self.trusts(hop[0]):
                break
        if client is None or client[0] is None:
            return
        scope["client"] = (client[0], 0)
        if client[1] in _SCHEMES:
            scope["scheme"] = client[1]


def _network(entry: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    fix = "give an address ('10.0.0.1', '::1') or a network ('10.0.0.0/8', 'fd00::/8')"
    if not isinstance(entry, str):
        raise ConfigurationError(f"trusted proxy {entry!r} is not a string; {fix}")
    try:
        return ipaddress.ip_network(entry.strip())
    except ValueError as exc:
        if "host bits set" in str(exc):
            network = ipaddress.ip_network(entry.strip(), strict=False)
            raise ConfigurationError(
                f"trusted proxy {entry!r} has host bits set; write the network as '{network}'"
            ) from exc
        raise ConfigurationError(f"trusted proxy {entry!r} is not an IP address or network; {fix}") from exc
