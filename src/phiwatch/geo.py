"""Country and network view of scanned addresses, from geoip2fast's bundled offline database.

Only globally routable addresses are looked up; private, loopback, link-local,
multicast and reserved ranges are labelled from the address alone. The database
(geoip2fast-ipv6.dat.gz, IPv4 and IPv6, built from MaxMind GeoLite2 Country) is loaded
on first use only, so importing this module costs nothing; no network traffic, ever.
"""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal

from .models import ScanResult

Kind = Literal["public", "private", "loopback", "link-local", "reserved", "multicast", "unknown"]

DATABASE_FILE = "geoip2fast-ipv6.dat.gz"
ATTRIBUTION = "Country data: GeoLite2 by MaxMind (https://www.maxmind.com), via geoip2fast."

LABELS: dict[str, str] = {
    "private": "Private network",
    "loopback": "Loopback",
    "link-local": "Link-local",
    "reserved": "Reserved range",
    "multicast": "Multicast",
    "unknown": "Unknown address",
}
UNKNOWN_COUNTRY = "Unknown country"

# Shared address space (carrier-grade NAT) sits behind someone's NAT: private, not reserved.
_PRIVATE = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                                                    "100.64.0.0/10", "fc00::/7"))
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")


@dataclass(frozen=True)
class Location:
    address: str
    kind: Kind
    country_code: str | None = None
    country_name: str | None = None

    @property
    def label(self) -> str:
        if self.kind != "public":
            return self.country_name or LABELS[self.kind]
        if self.country_name and self.country_code:
            return f"{self.country_name} ({self.country_code})"
        return UNKNOWN_COUNTRY


def classify(address: str) -> Kind:
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if any(ip.version == net.version and ip in net for net in _PRIVATE):
        return "private"
    if isinstance(ip, ipaddress.IPv6Address) and ip not in _GLOBAL_UNICAST_V6:
        return "reserved"
    return "public" if ip.is_global else "reserved"


@cache
def _database() -> Any:
    from geoip2fast import GeoIP2Fast  # heavy (about 40 MiB in memory): only when a report asks

    return GeoIP2Fast(geoip2fast_data_file=DATABASE_FILE)


def database_source() -> str:
    """The data version geoip2fast reports, e.g. MAXMIND:GeoLite2-Country-IPv4IPv6-en-20240618."""
    return str(getattr(_database(), "source_info", "") or "unknown")


@cache
def locate(address: str) -> Location:
    kind = classify(address)
    if kind != "public":
        return Location(address=address, kind=kind, country_name=LABELS[kind])
    ip = ipaddress.ip_address(address.strip())
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    found = _database().lookup(str(ip))
    code = str(getattr(found, "country_code", "") or "")
    name = str(getattr(found, "country_name", "") or "")
    if len(code) != 2 or not code.isalpha() or getattr(found, "is_private", False):
        return Location(address=address, kind="public")  # not in the database
    return Location(address=address, kind="public", country_code=code.upper(), country_name=name or None)


def summarise_countries(result: ScanResult) -> list[tuple[str, int, int]]:
    """(label, services, exposures) per place, most services first.

    services: services recorded at addresses in that place; exposures: findings there that
    carry exposure counts (proven data exposures).
    """
    services: dict[str, int] = defaultdict(int)
    exposures: dict[str, int] = defaultdict(int)
    for service in result.services:
        services[locate(service.host).label] += 1
    for finding in result.findings:
        if finding.exposure is not None:
            exposures[locate(finding.host).label] += 1
    labels = set(services) | set(exposures)
    rows = [(label, services[label], exposures[label]) for label in labels]
    return sorted(rows, key=lambda row: (-row[1], -row[2], row[0]))
