"""Client addresses: the key a rate limit charges, and the address behind trusted proxies (and only theirs)."""

from __future__ import annotations

import time
from typing import Any

import pytest

from citadel.errors import ConfigurationError
from citadel.http import clients
from citadel.http.clients import MAX_HOPS, TrustedProxies, client_key

PROXIES = TrustedProxies(["10.0.0.0/8", "127.0.0.1", "::1", "fd00::/8"])


def scope(peer: str | None, *headers: tuple[str, str]) -> dict[str, Any]:
    return {
        "type": "http",
        "client": None if peer is None else (peer, 51000),
        "headers": [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers],
        "scheme": "http",
    }


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the calls of a function of the clients module; the count is the list's only item."""
    calls = [0]
    real = getattr(clients, name)

    def counted(text: str) -> Any:
        calls[0] += 1
        return real(text)

    monkeypatch.setattr(clients, name, counted)
    return calls


def resolved(peer: str | None, *headers: tuple[str, str], proxies: TrustedProxies = PROXIES) -> dict[str, Any]:
    request = scope(peer, *headers)
    proxies.resolve(request)
    return request


# client_key


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
        ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("fe80::1%eth0", "fe80::/64"),
        ("::1", "::/64"),
        (None, "unknown"),
        ("", "unknown"),
        ("testclient", "unknown"),
        ("203.0.113.256", "unknown"),
        ("203.0.113.7:80", "unknown"),
        ("x" * 10_000, "unknown"),
    ],
)
def test_client_key_names_the_address_or_network_a_limit_charges(host: str | None, key: str) -> None:
    assert client_key(host) == key


def test_every_address_of_one_ipv6_slash_64_shares_one_key_and_only_they_do() -> None:
    keys = {client_key(f"2001:db8:7:8:{i:x}::{i:x}") for i in range(1, 500)}

    assert keys == {"2001:db8:7:8::/64"}
    assert client_key("2001:db8:7:9::1") == "2001:db8:7:9::/64"


def test_the_client_key_cache_stays_bounded_under_many_addresses() -> None:
    for i in range(20_000):
        client_key(f"198.51.{i // 256 % 256}.{i % 256}")
        client_key(f"{i}-not-an-address")

    assert len(clients._keys) <= clients._CACHE_SIZE


def test_a_repeated_client_key_is_not_parsed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    parsed = counting(monkeypatch, "parse_address")

    keys = {client_key("2001:db8:5::1") for _ in range(1_000)}

    assert (keys, parsed) == ({"2001:db8:5::/64"}, [1])


# configuration


@pytest.mark.parametrize(
    ("entry", "fix"),
    [
        ("10.0.0.0/33", "give an address"),
        ("proxy.internal", "give an address"),
        ("*", "give an address"),
        ("", "give an address"),
        ("10.0.0.1/8", "write the network as '10.0.0.0/8'"),
        (42, "not a string"),
    ],
)
def test_a_bad_trusted_proxy_entry_is_named_with_its_fix(entry: Any, fix: str) -> None:
    with pytest.raises(ConfigurationError, match=fix) as raised:
        TrustedProxies(["127.0.0.1", entry])

    assert repr(entry) in str(raised.value)


def test_one_string_instead_of_a_list_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="give a list"):
        TrustedProxies("10.0.0.0/8")


@pytest.mark.parametrize(
    ("host", "trusted"),
    [
        ("10.1.2.3", True),
        ("127.0.0.1", True),
        ("127.0.0.2", False),
        ("::1", True),
        ("fd12:3456::1", True),
        ("::ffff:10.9.9.9", True),
        ("fe80::1%eth0", False),
        ("192.0.2.1", False),
        ("2001:db8::1", False),
        ("garbage", False),
        ("", False),
    ],
)
def test_trusts_only_addresses_in_the_configured_networks(host: str, trusted: bool) -> None:
    assert PROXIES.trusts(host) is trusted


def test_the_trust_and_address_caches_stay_bounded_under_many_addresses() -> None:
    proxies = TrustedProxies(["10.0.0.0/8"])
    for i in range(20_000):
        proxies.resolve(scope(f"10.1.{i // 256 % 256}.{i % 256}", ("x-forwarded-for", f"203.0.113.7:{i}")))

    assert max(len(proxies._trusted), len(clients._nodes)) <= clients._CACHE_SIZE


# who may set the client


def test_without_trusted_proxies_resolve_changes_nothing() -> None:
    request = resolved("10.0.0.1", ("x-forwarded-for", "203.0.113.7"), proxies=TrustedProxies())

    assert request["client"] == ("10.0.0.1", 51000)


def test_an_untrusted_peer_cannot_spoof_its_address_or_scheme() -> None:
    request = scope(
        "192.0.2.66",
        ("x-forwarded-for", "203.0.113.7"),
        ("x-forwarded-proto", "https"),
        ("forwarded", "for=198.51.100.1;proto=https"),
    )
    before = dict(request)

    PROXIES.resolve(request)

    assert request == before


def test_a_request_without_forwarding_headers_or_without_a_client_is_left_alone() -> None:
    assert resolved("10.0.0.1")["client"] == ("10.0.0.1", 51000)
    assert resolved("10.0.0.1", ("x-forwarded-proto", "https"))["scheme"] == "http"
    assert resolved(None, ("x-forwarded-for", "203.0.113.7"))["client"] is None


@pytest.mark.parametrize("prepended", ["1.1.1.1", "\x00garbage, unknown", "10.0.0.9"])
def test_what_a_client_prepends_is_ignored_the_rightmost_untrusted_address_wins(prepended: str) -> None:
    # The client sent its own X-Forwarded-For; the proxy appended the address it saw.
    request = resolved("10.0.0.1", ("x-forwarded-for", f"{prepended}, 203.0.113.7"))

    assert request["client"] == ("203.0.113.7", 0)


def test_the_walk_skips_every_trusted_proxy_in_the_chain() -> None:
    request = resolved("10.0.0.3", ("x-forwarded-for", "6.6.6.6, 203.0.113.7, 10.0.0.1, 10.0.0.2"))

    assert request["client"] == ("203.0.113.7", 0)


def test_when_every_entry_is_a_trusted_proxy_the_leftmost_is_the_client() -> None:
    assert resolved("10.0.0.3", ("x-forwarded-for", "10.0.0.1, 10.0.0.2"))["client"] == ("10.0.0.1", 0)


def test_repeated_x_forwarded_for_headers_are_read_as_one_list_in_order() -> None:
    request = resolved("10.0.0.3", ("x-forwarded-for", "6.6.6.6, 203.0.113.7"), ("x-forwarded-for", "10.0.0.2"))

    assert request["client"] == ("203.0.113.7", 0)


@pytest.mark.parametrize(
    ("entry", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.7:4711", "203.0.113.7"),
        ("2001:db8::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:4711", "2001:db8::1"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("[fe80::1%eth0]:80", "fe80::1"),
    ],
)
def test_a_trusted_peer_takes_the_client_from_x_forwarded_for_with_ports_and_ipv6_forms(
    entry: str, client: str
) -> None:
    assert resolved("10.0.0.1", ("x-forwarded-for", entry))["client"] == (client, 0)


@pytest.mark.parametrize(
    "value",
    [
        "unknown",
        "garbage",
        "",
        " , ",
        "203.0.113.7:http",
        "203.0.113.7:123456",
        "[2001:db8::1",
        "[2001:db8::1]x",
        "[203.0.113.7:80",
        "1.2.3",
        "\xff\xfe\x00",
        "203.0.113.7, garbage",
        "203.0.113.7, unknown, 10.0.0.2",
    ],
)
def test_an_entry_that_is_not_an_address_before_an_untrusted_one_leaves_the_peer(value: str) -> None:
    request = resolved("10.0.0.1", ("x-forwarded-for", value), ("x-forwarded-proto", "https"))

    assert request["client"] == ("10.0.0.1", 51000)
    assert request["scheme"] == "http"


@pytest.mark.parametrize(
    ("header", "entry"),
    [("x-forwarded-for", "198.51.{}.{}"), ("forwarded", 'for="[2001:db8::{}:{}]:1";proto=http')],
)
def test_a_list_of_ten_thousand_addresses_is_read_from_the_right_only(
    monkeypatch: pytest.MonkeyPatch, header: str, entry: str
) -> None:
    spoofed = ", ".join(entry.format(i // 256 % 256, i % 256) for i in range(10_000))
    last = "203.0.113.7" if header == "x-forwarded-for" else "for=203.0.113.7;proto=https"
    request = scope("10.0.0.1", (header, f"{spoofed}, {last}"), ("x-forwarded-proto", "https"))
    parsed = counting(monkeypatch, "_node_address")

    started = time.perf_counter()
    PROXIES.resolve(request)

    assert (request["client"], request["scheme"]) == (("203.0.113.7", 0), "https")
    assert parsed[0] <= MAX_HOPS
    assert time.perf_counter() - started < 0.05


def test_past_the_hop_limit_the_rest_of_the_list_is_ignored() -> None:
    chain = ", ".join(f"10.0.1.{i}" for i in range(MAX_HOPS + 5))
    request = resolved("10.0.0.1", ("x-forwarded-for", f"203.0.113.7, {chain}"))

    # Every hop read is a trusted proxy, so the leftmost one read stands for the client; 203.0.113.7 is past it.
    assert request["client"] == ("10.0.1.5", 0)


@pytest.mark.parametrize(
    ("header", "value"),
    [
        ("x-forwarded-for", "x" * 1_000_000),
        ("x-forwarded-for", "1" * 1_000_000 + ", 2"),
        ("forwarded", ";" * 100_000 + "for=203.0.113.7"),
        ("forwarded", "for=" + "[" * 1_000_000),
    ],
)
def test_a_huge_header_of_garbage_is_cheap_and_harmless(header: str, value: str) -> None:
    request = scope("10.0.0.1", (header, value))

    started = time.perf_counter()
    PROXIES.resolve(request)

    assert request["client"] == ("10.0.0.1", 51000)
    assert time.perf_counter() - started < 0.05


# schemes


def test_the_scheme_comes_from_x_forwarded_proto() -> None:
    request = resolved("10.0.0.1", ("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", "HTTPS"))

    assert request["scheme"] == "https"


def test_the_scheme_is_the_one_of_the_hop_that_named_the_client() -> None:
    # Each proxy appended the scheme it was reached over: the client reached the outer proxy over https.
    headers = ("x-forwarded-for", "203.0.113.7, 10.0.0.2"), ("x-forwarded-proto", "http, https, http")
    request = resolved("10.0.0.3", *headers)

    assert request["client"] == ("203.0.113.7", 0)
    assert request["scheme"] == "https"


@pytest.mark.parametrize("proto", ["ftp", "javascript", "https://evil", "", "ws"])
def test_a_scheme_other_than_http_or_https_is_ignored(proto: str) -> None:
    request = resolved("10.0.0.1", ("x-forwarded-for", "203.0.113.7"), ("x-forwarded-proto", proto))

    assert request["client"] == ("203.0.113.7", 0)
    assert request["scheme"] == "http"


# Forwarded (RFC 7239)


@pytest.mark.parametrize(
    ("value", "client"),
    [
        ("for=203.0.113.7", "203.0.113.7"),
        ('for="203.0.113.7:4711"', "203.0.113.7"),
        ('for="[2001:db8:cafe::17]:4711"', "2001:db8:cafe::17"),
        ('for="[2001:db8:cafe::17]"', "2001:db8:cafe::17"),
        ('For="[2001:db8:cafe::17]:_port"', "2001:db8:cafe::17"),
        ("for=192.0.2.60;proto=http;by=203.0.113.43", "192.0.2.60"),
        ("by=10.0.0.1; for=203.0.113.7 ;host=example.com", "203.0.113.7"),
        ("for=192.0.2.43, for=198.51.100.17", "198.51.100.17"),
        ("for=192.0.2.43, for=198.51.100.17, for=10.0.0.2", "198.51.100.17"),
        ('for="[::ffff:203.0.113.7]"', "203.0.113.7"),
    ],
)
def test_forwarded_names_the_client(value: str, client: str) -> None:
    assert resolved("10.0.0.1", ("forwarded", value))["client"] == (client, 0)


@pytest.mark.parametrize(
    "value",
    [
        "for=unknown",
        "for=_hidden",
        'for="_gazonk"',
        "proto=https",
        "for=",
        "for",
        "garbage",
        ";;;",
        "for=203.0.113.7;for=198.51.100.1",
        'for="[2001:db8::1"',
        "for=203.0.113.7, for=unknown",
    ],
)
def test_a_forwarded_element_without_one_address_leaves_the_peer(value: str) -> None:
    request = resolved("10.0.0.1", ("forwarded", value))

    assert request["client"] == ("10.0.0.1", 51000)
    assert request["scheme"] == "http"


def test_repeated_forwarded_headers_are_one_list_in_order() -> None:
    request = resolved("10.0.0.1", ("forwarded", "for=6.6.6.6, for=203.0.113.7"), ("forwarded", "for=10.0.0.2"))

    assert request["client"] == ("203.0.113.7", 0)


def test_forwarded_proto_of_the_client_hop_sets_the_scheme() -> None:
    request = resolved("10.0.0.1", ("forwarded", "for=203.0.113.7;proto=https, for=10.0.0.2;proto=http"))

    assert (request["client"], request["scheme"]) == (("203.0.113.7", 0), "https")


def test_forwarded_wins_over_x_forwarded_for_in_either_order() -> None:
    for headers in (
        (("x-forwarded-for", "198.51.100.9"), ("forwarded", "for=203.0.113.7;proto=https")),
        (("forwarded", "for=203.0.113.7;proto=https"), ("x-forwarded-for", "198.51.100.9")),
    ):
        request = resolved("10.0.0.1", *headers, ("x-forwarded-proto", "http"))
        assert (request["client"], request["scheme"]) == (("203.0.113.7", 0), "https")


def test_a_quoted_comma_from_the_client_cannot_hide_the_address_the_proxy_appended() -> None:
    request = resolved("10.0.0.1", ("forwarded", 'for="198.51.100.1, for=6.6.6.6", for=203.0.113.7'))

    assert request["client"] == ("203.0.113.7", 0)


def test_an_ipv6_proxy_is_trusted_and_skipped_like_any_other() -> None:
    request = resolved("::1", ("forwarded", 'for="[2001:db8::7]:1", for="[fd00::2]"'))

    assert request["client"] == ("2001:db8::7", 0)


def test_the_next_request_after_a_hostile_one_resolves_normally() -> None:
    resolved("10.0.0.1", ("forwarded", '"' * 10_000), ("x-forwarded-for", "," * 10_000))

    assert resolved("10.0.0.1", ("forwarded", "for=203.0.113.7"))["client"] == ("203.0.113.7", 0)
