"""S3 bucket names found elsewhere in a scan, for S3 endpoints that serve anonymous requests but list no bucket.

An endpoint with anonymous access and an empty bucket list (SeaweedFS without identities, a
gateway that hides ListBuckets) serves every bucket to whoever names one. Names leak: a web
page links to `https://BUCKET.s3.amazonaws.com/...` or `s3://BUCKET/`, a script's configuration
says `bucket: "BUCKET"`, a CORS rule allows an S3 origin, another service of the same host
calls its share, module or export by the same name. The scanner holds such an endpoint back
until its host is done, then probes it again with the names the host's other services gave
(`revisit`). Names are checked against S3's bucket-name rules and bounded in number.
"""

from __future__ import annotations

import re
from ipaddress import ip_address

from ..engine import Engine
from ..models import Service
from .walk import FileOptions

MAX_HINTS = 32  # names tried per endpoint, besides the user's
_NAME = r"([a-z0-9][a-z0-9.-]{1,61}[a-z0-9])"
_BUCKET = re.compile(rf"^{_NAME}$")
_IN_TEXT = (
    re.compile(rf"https?://{_NAME}\.s3[.-](?:[a-z0-9-]+\.)?amazonaws\.com", re.I),  # virtual-hosted
    re.compile(rf"https?://s3[.-](?:[a-z0-9-]+\.)?amazonaws\.com/{_NAME}(?:[/?\"'\s]|$)", re.I),  # path style
    re.compile(rf"\bs3://{_NAME}(?:[/\"'\s]|$)", re.I),
    re.compile(rf"""\bbucket(?:_?name)?["']?\s*[:=]\s*["']{_NAME}["']""", re.I),  # bucket: "NAME" in a script
)
MAX_TEXT = 256 * 1024  # characters of a page searched for names


def bucket_name_problem(name: str) -> str | None:
    """Why `name` is not a valid S3 bucket name (AWS general purpose rules), or None."""
    if not 3 <= len(name) <= 63:
        return "a bucket name has 3 to 63 characters"
    if not _BUCKET.match(name):
        return "only lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit"
    if ".." in name or ".-" in name or "-." in name:
        return "no two adjacent dots, and no dot next to a hyphen"
    try:
        ip_address(name)
        return "a bucket name is not an IP address"
    except ValueError:
        pass
    if name.startswith(("xn--", "sthree-", "amzn-s3-demo-")) or name.endswith(
        ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
    ):
        return "reserved prefix or suffix"
    return None


def in_text(*texts: bytes | str | None) -> list[str]:
    """Valid bucket names that pages, scripts or headers (CORS origins) name, first seen first."""
    found: dict[str, None] = {}
    for text in texts:
        if not text:
            continue
        value = text[:MAX_TEXT].decode("utf-8", "replace") if isinstance(text, bytes) else text[:MAX_TEXT]
        for pattern in _IN_TEXT:
            for match in pattern.finditer(value):
                name = match.group(1).lower()
                if bucket_name_problem(name) is None:
                    found.setdefault(name, None)
                if len(found) >= MAX_HINTS:
                    return list(found)
    return list(found)


def from_service(service: Service) -> list[str]:
    """Names a finished service gives: links and CORS origins of its pages, its shares, modules,
    exports and buckets (as far as they are valid bucket names)."""
    names: list[str] = []
    if service.http is not None:
        names += service.http._bucket_hints  # the raw names; the facts keep them by the place-name rule
    if service.repository is not None:
        for share in service.repository.shares:
            candidate = share.name.strip("/").rsplit("/", 1)[-1].lower()
            if candidate and bucket_name_problem(candidate) is None:
                names.append(candidate)
    return names


def wants_names(service: Service) -> bool:
    """An S3 endpoint that serves anonymous requests (NoSuchBucket for a random name) but read no bucket."""
    facts = service.repository
    if service.protocol != "s3" or facts is None or facts.random_bucket != "NoSuchBucket":
        return False
    return not any(share.readable for share in facts.shares if share.name != "/")


async def revisit(engine: Engine, service: Service, names: list[str], options: FileOptions) -> Service:
    """The endpoint probed again with the names found elsewhere (after the user's); the service as it
    was when there are none it has not tried."""
    tried = set(options.s3_buckets)
    new = [name for name in dict.fromkeys(names) if name not in tried][:MAX_HINTS]
    if not new:
        return service
    from ..protocol import Protocol
    from . import BY_NAME  # the S3 row's probe, imported (with botocore) only for such an endpoint
    from .options import ProbeOptions
    from .outcome import Peer

    tls = service.http is not None and service.http.scheme == "https"
    given = FileOptions(options.limits, (*options.s3_buckets, *new))
    probe = BY_NAME[Protocol.S3].load_probe()
    outcome = await probe(engine, Peer(service.host, service.port, tls), ProbeOptions(files=given))
    if outcome is None or outcome.facts.random_bucket is None:  # its answers changed: keep the first visit
        return service
    outcome.facts.hinted_buckets = len(new)
    return service.model_copy(update={"status": outcome.status, "detail": outcome.detail,
                                      "repository": outcome.facts})  # fmt: skip
