"""The guard on outbound requests (webhooks): a URL may reach only public addresses unless
an admin allowed private ones for it.

* URLs are parsed as the HTTP client (httpx) parses them, so what is checked is what is used.
* Every hostname is resolved and every address checked, including IPv4 addresses carried
  inside IPv6 ones (IPv4-mapped and -compatible, NAT64 ``64:ff9b::/96``, 6to4 ``2002::/16``,
  Teredo), which reach the IPv4 address they embed.
* The connection goes to exactly the addresses that were checked (``pinned_client``): a name
  that resolves differently a moment later (DNS rebinding) cannot redirect it. The URL's
  host still names the server for ``Host``, TLS SNI and the certificate check.
* Redirects are followed by hand by the caller, so that each hop is checked again.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import httpcore
import httpx

from loopin.errors import ValidationError

_HOSTNAME = re.compile(r"[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*\.?")
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")

IP = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_url(url: str) -> httpx.URL:
    """The URL as the HTTP client will use it; ValidationError if it cannot or may not be used."""
    if not isinstance(url, str) or len(url) > 2048:
        raise ValidationError("The URL must be a string of at most 2048 characters.")
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as exc:
        raise ValidationError(f"'{url!r}' is not a usable URL: {exc}") from exc
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise ValidationError(f"'{url}' is not an http(s) URL with a host.")
    if parsed.userinfo:
        raise ValidationError("Webhook URLs may not carry user names or passwords.")
    if parsed.port is not None and not 1 <= parsed.port <= 65535:
        raise ValidationError(f"The port {parsed.port} is out of range (1 to 65535).")
    host = parsed.host
    if _ip(host) is None and not _HOSTNAME.fullmatch(host):
        raise ValidationError(f"'{host}' is not a host name or an IP address.")
    return parsed


def check_url_syntax(url: str) -> None:
    parse_url(url)


def _ip(host: str) -> IP | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def embedded_ipv4(ip: IP) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address reaches through a translation or tunnel."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    found: list[ipaddress.IPv4Address] = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.extend(ip.teredo)
    low32 = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if any(ip in net for net in _NAT64) or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        found.append(low32)
    return found


def is_public(ip: IP) -> bool:
    """A global unicast address, and so is every IPv4 address it embeds."""
    if ip.is_multicast or not ip.is_global:
        return False
    return all(is_public(v4) for v4 in embedded_ipv4(ip))


def resolve_allowed(url: str, *, allow_private: bool) -> list[str]:
    """The addresses ``url``'s host resolves to, all of them allowed; ValidationError if not."""
    parsed = parse_url(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    literal = _ip(host)
    if literal is not None:
        addresses = [str(literal)]
    else:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            reason = exc.strerror if isinstance(exc, socket.gaierror) else str(exc)
            raise ValidationError(f"The host '{host}' cannot be resolved: {reason}.") from exc
        addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not is_public(ip):
                raise ValidationError(
                    f"'{host}' resolves to {address}, a loopback, private, link-local or reserved address "
                    "(or one that carries such an IPv4 address). Webhooks may only reach public addresses "
                    "unless an admin allows private ones for this webhook."
                )
    return addresses


class _PinnedBackend(httpcore.NetworkBackend):
    """Connects to the checked addresses, whatever host name the connection is for."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self._addresses = list(addresses)
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        last: Exception | None = None
        for address in self._addresses:
            try:
                return self._backend.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError("no address to connect to")

    def connect_unix_socket(self, *args: Any, **kwargs: Any) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("not for outbound requests")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


def pinned_client(addresses: Sequence[str], *, timeout: float) -> httpx.Client:
    """An HTTP client whose connections go to ``addresses`` only (from ``resolve_allowed``),
    with no proxy from the environment and no redirects of its own."""
    transport = httpx.HTTPTransport()
    ssl_context = httpx.create_ssl_context()
    transport._pool = httpcore.ConnectionPool(ssl_context=ssl_context, network_backend=_PinnedBackend(addresses))
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)
