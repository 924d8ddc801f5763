"""The guard on outbound requests (webhooks): a URL may reach only public addresses unless
an admin allowed private ones for it. Every hostname is resolved and every address checked,
and redirects are followed by hand so that each hop is checked again."""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from loopin.errors import ValidationError


def check_url_syntax(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"'{url}' is not an http(s) URL with a host.")
    if parts.username or parts.password:
        raise ValidationError("Webhook URLs may not carry user names or passwords.")
    if len(url) > 2048:
        raise ValidationError("The URL is longer than 2048 characters.")


def resolve_allowed(url: str, *, allow_private: bool) -> list[str]:
    """The addresses ``url``'s host resolves to, all of them allowed; ValidationError if not."""
    check_url_syntax(url)
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = socket.getaddrinfo(
            host, parts.port or (443 if parts.scheme == "https" else 80), type=socket.SOCK_STREAM
        )
    except socket.gaierror as exc:
        raise ValidationError(f"The host '{host}' cannot be resolved: {exc.strerror}.") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%")[0])
            if not ip.is_global or ip.is_multicast:
                raise ValidationError(
                    f"'{host}' resolves to {address}, a loopback, private, link-local or reserved address. "
                    "Webhooks may only reach public addresses unless an admin allows private ones for this webhook."
                )
    return addresses
