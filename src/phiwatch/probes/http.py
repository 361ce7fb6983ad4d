"""HTTP(S) probe for web PACS, viewers and DICOMweb: one generic probe over data rows.

Fingerprints (web_products.yaml) name the product and version; then authentication is
examined (none, blank, and default logins only when asked), CORS, and DICOMweb exposure.
Facts only; checks decide what they mean.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from ..engine import Engine, ProbeFailure
from ..models import DicomWebExposure, HttpFacts, ProbeStatus, ProductMatch
from ..peertext import peer_text, place_name
from ..text import sanitize
from . import bucket_names, dicomweb
from .options import HttpOptions, ProbeOptions
from .outcome import Outcome, Peer
from .steps import Steps, failure_of
from .web_catalog import Product, known_flaws, web_catalog

if TYPE_CHECKING:  # httpcore is imported when the first web service is probed
    from .http_client import HttpResponse, HttpSession

MAX_DEFAULT_LOGINS = 3
BLANK = "Basic Og=="  # user and password both empty: base64 of ':'
_TITLE = re.compile(rb"<title[^>]*>(.{0,200}?)</title", re.IGNORECASE | re.DOTALL)
_PASSWORD_INPUT = re.compile(rb"<input[^>]+type=[\"']?password", re.IGNORECASE)
_HIDDEN = re.compile(
    r"<input[^>]*type=[\"']?hidden[\"']?[^>]*name=[\"']?([A-Za-z0-9_]{1,40})[\"']?"
    r"(?:[^>]*value=[\"']?([^\"'>\s]{0,64}))?",
    re.IGNORECASE,
)


HttpOutcome = Outcome[HttpFacts]


class _Probe:
    def __init__(self, session: HttpSession, options: HttpOptions) -> None:
        self.session = session
        self.options = options
        self.facts = HttpFacts(scheme="https" if session.tls else "http")  # type: ignore[arg-type]
        self._cache: dict[str, HttpResponse | None] = {}
        self.auth: dict[str, str] = {}
        self.access = "none"
        self.steps = Steps()

    async def get(self, path: str, headers: dict[str, str] | None = None) -> HttpResponse | None:
        """A cached GET; None when this path failed (the failure is not fatal to the probe)."""
        key = path if not headers else f"{path}\n{sorted(headers.items())}"
        if key not in self._cache:
            try:
                self._cache[key] = await self.session.request(path, headers=headers)
            except ProbeFailure as failure:
                if failure.status is ProbeStatus.BUDGET_EXCEEDED:
                    raise
                self._cache[key] = None
        return self._cache[key]

    async def run(self) -> ProbeStatus:
        root = await self.session.request("/")  # a failure here is the service's status
        self._cache["/"] = root
        steps = self.steps
        await steps.run("root", self._describe_root)
        await steps.run("fingerprint", self._fingerprint)
        await steps.run("logins", self._logins)
        await steps.run("dicomweb", self._dicomweb)
        return steps.status(self.gathered())

    def gathered(self) -> ProbeStatus:
        """The status the facts prove, whatever step failed after."""
        if any(d.result == "exposed" for d in self.facts.dicomweb):
            return ProbeStatus.EXPOSED
        if any(d.result == "empty" for d in self.facts.dicomweb):
            return ProbeStatus.EMPTY
        return ProbeStatus.OPEN

    async def _describe_root(self) -> None:
        facts, root = self.facts, self._cache["/"]
        assert root is not None
        facts.status_code = root.status
        facts.server = peer_text(root.header("server") or None)
        facts.title = self._title(root)
        hints = bucket_names.in_text(root.body, root.header("access-control-allow-origin"))
        facts._bucket_hints = hints  # raw, in memory only: names to try on S3 endpoints
        facts.bucket_names = [place_name(name) for name in hints]
        self._note_auth(root)

    @staticmethod
    def _title(response: HttpResponse) -> str | None:
        """The page title (after any same-origin redirects), through the peer-text gate."""
        title = _TITLE.search(response.body)
        if not title:
            return None
        return peer_text(b" ".join(title.group(1).split()).decode("utf-8", "replace")[:200] or None)

    def _note_auth(self, response: HttpResponse) -> None:
        challenge = response.header("www-authenticate")
        if response.status == 401 and challenge and self.facts.auth_scheme is None:
            scheme = challenge.split(" ", 1)[0]
            self.facts.auth_scheme = scheme if re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{0,15}", scheme) else None
            realm = re.search(r'realm="([^"]{0,100})"', challenge)
            self.facts.auth_realm = peer_text(realm.group(1)) if realm else None
        if response.status == 200 and _PASSWORD_INPUT.search(response.body):
            self.facts.login_form = True

    async def _fingerprint(self) -> None:
        seen: set[tuple[str, str]] = set()
        for row in web_catalog().fingerprints:
            response = await self.get(row.path)
            if response is None:
                continue
            self._note_auth(response)
            if not row.matches(response) or (row.product, row.path) in seen:
                continue
            seen.add((row.product, row.path))
            version = row.version_of(response)
            self.facts.products.append(
                ProductMatch(product=row.product, version=version, path=row.path, kind=row.kind)
            )
            asks_password = _PASSWORD_INPUT.search(response.body) is not None
            if 200 <= response.status < 300 and row.kind in ("ui", "api") and not asks_password:
                self.facts.open_paths.append(row.path)
            for flaw in known_flaws(row.product, version):
                if flaw not in self.facts.vulnerabilities:
                    self.facts.vulnerabilities.append(flaw)

    def _products(self) -> list[str]:
        return list(dict.fromkeys(p.product for p in self.facts.products))

    def _entries(self) -> list[Product]:
        """Product data of the identified products, in the order they were found."""
        products = web_catalog().products
        return [products[name] for name in self._products() if name in products]

    def _protected_path(self) -> str | None:
        """A path that asked for HTTP authentication, to test logins against."""
        for key, response in self._cache.items():
            if response is not None and response.status == 401 and "\n" not in key:
                return key
        return None

    async def _form_login(self) -> None:
        """Submit a product's login form with a blank user name and password, once."""
        for entry in self._entries():
            if entry.login_form is None:
                continue
            form = entry.login_form
            page = await self.get(form.page)
            if page is None or page.status != 200:
                return
            fields = dict(_HIDDEN.findall(page.text)[:32])
            fields.update(form.fixed)
            fields[form.user_field] = fields[form.password_field] = ""
            posted = await self.session.request(
                form.action, method="POST", body=urlencode(fields).encode(), follow=False,
                headers={"Content-Type": "application/x-www-form-urlencoded"},
            )
            location = posted.header("location")
            cookie = posted.header("set-cookie").split(";", 1)[0]
            if posted.status not in (301, 302, 303) or form.failure_marker in location or not cookie:
                self.facts.blank_login = False
                return
            after = await self.session.request(form.page, headers={"Cookie": cookie}, follow=False)
            still_asks = after.status == 200 and _PASSWORD_INPUT.search(after.body) is not None
            self.facts.blank_login = not still_asks and "login" not in after.header("location").lower()
            return

    async def _logins(self) -> None:
        try:
            await self._form_login()
        except ProbeFailure as failure:
            if failure.status is ProbeStatus.BUDGET_EXCEEDED:
                raise
        if self.facts.blank_login:
            return
        for entry in self._entries():
            if entry.login_check and await self._asks_auth(entry.login_check):
                break
        path = self._protected_path()
        if path is None:
            return
        blank = await self.get(path, {"Authorization": BLANK})
        self.facts.blank_login = blank is not None and 200 <= blank.status < 300
        if self.facts.blank_login:
            self.auth, self.access = {"Authorization": BLANK}, "blank-login"
            return
        if not self.options.try_default_logins:
            return
        from .http_client import basic_auth

        for user, password in self._default_logins():
            self.facts.default_logins_tried += 1
            answer = await self.get(path, {"Authorization": basic_auth(user, password)})
            if answer is not None and 200 <= answer.status < 300:
                self.facts.default_login_user = sanitize(user, 32)
                self.auth = {"Authorization": basic_auth(user, password)}
                self.access = "default-login"
                return

    async def _asks_auth(self, path: str) -> bool:
        response = await self.get(path)
        if response is not None:
            self._note_auth(response)
        return response is not None and response.status == 401

    def _default_logins(self) -> list[tuple[str, str]]:
        pairs = [pair for entry in self._entries() for pair in entry.default_logins]
        return list(dict.fromkeys(pairs))[:MAX_DEFAULT_LOGINS]

    def _product_roots(self) -> list[str]:
        """DICOMweb roots of the identified products."""
        return [root for entry in self._entries() for root in entry.dicomweb_roots]

    async def _aet_roots(self) -> list[str]:
        """dcm4chee-arc lists its AEs; each has a QIDO root."""
        entry = web_catalog().products.get("dcm4chee-arc")
        if entry is None or entry.aets_path is None or "dcm4chee-arc" not in self._products():
            return []
        response = await self.get(entry.aets_path, self.auth or None)
        if response is None or response.status != 200:
            return []
        titles = re.findall(r'"dicomAETitle"\s*:\s*"([A-Za-z0-9_\-. ]{1,16})"', response.text)
        return [f"/dcm4chee-arc/aets/{t.strip()}/rs" for t in dict.fromkeys(titles)][:8]

    @staticmethod
    def _shown_root(root: str) -> str:
        """A root as kept in the facts: an AE title a peer listed passes the place-name rule."""
        prefix, suffix = "/dcm4chee-arc/aets/", "/rs"
        if root.startswith(prefix) and root.endswith(suffix):
            return f"{prefix}{place_name(root[len(prefix):-len(suffix)])}{suffix}"
        return root

    async def _dicomweb(self) -> None:
        product_roots = await self._aet_roots() + self._product_roots()
        roots = list(dict.fromkeys(product_roots + web_catalog().dicomweb_roots))
        for root in roots:
            exposure = DicomWebExposure(root=self._shown_root(root), result="empty", access=self.access)  # type: ignore[arg-type]
            paging = Steps()
            await paging.run("qido", dicomweb.query_studies,
                             self.session, exposure, self.auth, self.options.max_matches, root)
            if paging.failures:
                dicomweb.failed(exposure, paging.failures[0].detail)
                if paging.spent:  # the byte budget is gone: keep what was proven, stop here
                    self.facts.dicomweb.append(exposure)
                    self.steps.failures.extend(paging.failures)
                    return
            if exposure.result in ("exposed", "empty") and "Orthanc" in self._products():
                path = web_catalog().products["Orthanc"].statistics or "/statistics"
                await paging.run("statistics", dicomweb.orthanc_statistics,
                                 self.session, path, self.auth, exposure)
            if exposure.result in ("exposed", "empty") or (
                root in product_roots and exposure.result in ("auth-required", "error")
            ):
                self.facts.dicomweb.append(exposure)
            if exposure.result in ("exposed", "empty"):
                break  # one answering root proves the exposure; do not query the rest
        if any(d.cors_wildcard for d in self.facts.dicomweb):
            self.facts.cors_wildcard_credentials = True


async def probe(engine: Engine, peer: Peer, probe_options: ProbeOptions) -> HttpOutcome:
    host, port, tls, options = peer.host, peer.port, peer.tls, probe_options.http
    from .http_client import HttpLimits, HttpSession

    session = HttpSession(engine, host, port, tls, HttpLimits(request_time=options.request_time))
    runner = _Probe(session, options)
    try:
        status = await runner.run()
        detail = runner.steps.detail
    except Exception as exc:  # the root could not be fetched (or a bug): keep the facts gathered
        status, detail = failure_of(exc)
    finally:
        await session.aclose()
    runner.facts.error = detail
    runner.facts.requests = session.requests
    return HttpOutcome(status, runner.facts, detail, session.tls_facts)
