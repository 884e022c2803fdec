"""The SSRF guard for webhook URLs.

A webhook URL is entered by an integrator; without a guard it could make the server call
its own admin, the cloud metadata service or anything on the internal network. The host is
resolved and every address must be public, unless the host (or address, or a network in
CIDR notation) is listed in settings.WEBHOOK_ALLOWED_HOSTS. The request is then sent to the
address that was checked (the name is kept for the Host header and TLS), so a DNS answer
that changes between the check and the connection cannot sneak in a private address.
"""
from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings


class UnsafeUrl(ValueError):
    pass


@dataclass(frozen=True)
class SafeTarget:
    url: str  # the URL with the host replaced by the checked address
    host_header: str  # the original host[:port], for the Host header
    sni_hostname: str  # the original host name, for TLS (SNI and certificate check)
    scheme: str
    address: str


def _allowed(host: str, address: ipaddress._BaseAddress) -> bool:
    for entry in getattr(settings, "WEBHOOK_ALLOWED_HOSTS", []) or []:
        entry = entry.strip().lower()
        if not entry:
            continue
        if entry == host.lower():
            return True
        try:
            if address in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue
    return False


def _is_public(address: ipaddress._BaseAddress) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return not (address.is_private or address.is_loopback or address.is_link_local or address.is_multicast
                or address.is_reserved or address.is_unspecified or not address.is_global)


def url_check(url: str, *, resolve: bool = True) -> SafeTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("only http and https URLs are accepted")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not accepted")
    host = parts.hostname
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM) if resolve else []
    except socket.gaierror as exc:
        raise UnsafeUrl(f"cannot resolve {host}: {exc}") from exc
    if not resolve:
        return SafeTarget(url=url, host_header=parts.netloc, sni_hostname=host, scheme=parts.scheme, address="")
    addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
    if not addresses:
        raise UnsafeUrl(f"{host} has no address")
    for address in addresses:
        if not _is_public(address) and not _allowed(host, address):
            raise UnsafeUrl(f"{host} resolves to {address}, a private, loopback, link-local or multicast "
                            "address; list it in WEBHOOK_ALLOWED_HOSTS to allow it")
    chosen = addresses[0]
    netloc_host = f"[{chosen}]" if chosen.version == 6 else str(chosen)
    netloc = f"{netloc_host}:{parts.port}" if parts.port else netloc_host
    pinned = parts._replace(netloc=netloc).geturl()
    return SafeTarget(url=pinned, host_header=parts.netloc, sni_hostname=host, scheme=parts.scheme,
                      address=str(chosen))
