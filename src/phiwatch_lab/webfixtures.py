"""Small HTTP fixtures for web PACS products that cannot be installed here.

Run: ``python -m phiwatch_lab.webfixtures --base-port N``. One process, one threaded HTTP
server per product on 127.0.0.1:N+10 .. N+19 (webfixture_pages.FIXTURES), listen backlog
1024. Every response carries ``X-Phiwatch-Fixture: <product>``; every path not routed below
answers 404. The log holds method, path (never the query) and status only.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import logging
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlsplit

from . import webfixture_pages as pages

LOG = logging.getLogger("phiwatch_lab.webfixtures")
BODY_LIMIT = 8192
DICOM_JSON = "application/dicom+json"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    body: bytes
    host: str


@dataclass
class Response:
    status: int
    body: bytes = b""
    content_type: str | None = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)


def html(text: str, status: int = 200) -> Response:
    return Response(status, text.encode())


def as_json(data: Any, status: int = 200, content_type: str = "application/json") -> Response:
    return Response(status, json.dumps(data).encode(), content_type)


def redirect(location: str, status: int = 302, headers: list[tuple[str, str]] | None = None) -> Response:
    return Response(status, b"", None, [("Location", location), *(headers or [])])


def not_found() -> Response:
    return html(pages.NOT_FOUND, 404)


# --- QIDO-RS ---------------------------------------------------------------------------


def qido_studies(request: Request, retrieve_aet: str | None = None, retrieve_url: str | None = None) -> Response:
    """Canned studies as DICOM JSON: exact-match keys, then ``offset`` and ``limit``."""
    window: dict[str, int] = {}
    for name in ("offset", "limit"):
        raw = request.query.get(name, [""])[-1]
        if raw:
            if not raw.isdigit():
                return as_json({"errorMessage": f"invalid {name}"}, 400)
            window[name] = int(raw)
    studies = list(pages.STUDIES)
    for key, values in request.query.items():
        keyword = pages.QUERY_KEYS.get(key)
        if keyword and values[-1]:
            studies = [s for s in studies if _matches(s.get(keyword), values[-1])]
    start = window.get("offset", 0)
    stop = start + window["limit"] if "limit" in window else None
    matches = [pages.study_json(s, retrieve_aet, retrieve_url) for s in studies[start:stop]]
    return as_json(matches, 200, DICOM_JSON)


def _matches(value: object, wanted: str) -> bool:
    if isinstance(value, list):
        return wanted in value
    return str(value) == wanted


# --- authentication helpers ---------------------------------------------------------------


def basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _form(request: Request) -> dict[str, str]:
    parsed = parse_qs(request.body.decode(errors="replace"), keep_blank_values=True)
    return {key: values[-1] for key, values in parsed.items()}


class PacsLogin:
    """PacsOne's /pacs/login.php + authenticate.php; MedDream (its OEM) accepts a blank login."""

    def __init__(self, product: str, splash: bool, version: str | None, blank_login: bool) -> None:
        self.product, self.splash, self.version, self.blank_login = product, splash, version, blank_login
        self.session = secrets.token_hex(13)  # one PHPSESSID, granted to a blank login

    def _logged_in(self, request: Request) -> bool:
        return f"PHPSESSID={self.session}" in request.headers.get("cookie", "")

    def login_page(self, request: Request) -> Response:
        if self._logged_in(request):
            return redirect("home.php")
        message = request.query.get("message", [None])[-1]
        if message is not None:
            message = escape(message).replace("\n", "<p>")
        url = escape(f"http://{request.host}{request.path}")
        return html(pages.pacs_login_page(self.product, self.splash, self.version, url, message))

    def authenticate(self, request: Request) -> Response:
        form = _form(request)
        user = form.get("formUsername", "")
        accepted = (
            self.blank_login
            and form.get("loginvalue", "").lower() == "login"
            and user == ""
            and form.get("formPassword", "") == ""
            and form.get("formAntiSpam") == pages.ANTISPAM_CODE
        )
        if accepted:
            return redirect("login.php", headers=[("Set-Cookie", f"PHPSESSID={self.session}; path=/")])
        return redirect("login.php?message=" + quote_plus(pages.PACS_FAILED_LOGIN % user))

    def home(self, request: Request) -> Response:
        if not self._logged_in(request):
            return redirect("login.php")
        return html(pages.pacs_home_page(self.product))


# --- products -----------------------------------------------------------------------------

Route = Callable[[Request], Response]


def _static(response: Callable[[], Response]) -> Route:
    return lambda request: response()


def dcm4chee_routes(base_port: int) -> dict[tuple[str, str], Route]:
    aet = pages.DCM4CHEE_AET
    root = f"/dcm4chee-arc/aets/{aet}"
    retrieve = f"http://127.0.0.1:{base_port + 10}{root}/rs/studies"
    return {
        ("GET", "/dcm4chee-arc/ui2"): _static(lambda: redirect("/dcm4chee-arc/ui2/")),
        ("GET", "/dcm4chee-arc/ui2/"): _static(lambda: html(pages.DCM4CHEE_UI)),
        ("GET", "/dcm4chee-arc/aets"): _static(lambda: as_json(pages.DCM4CHEE_AETS)),
        ("GET", "/dcm4chee-arc/devices"): _static(lambda: as_json(pages.DCM4CHEE_DEVICES)),
        ("GET", "/dcm4chee-arc/devicename"): _static(lambda: as_json(pages.DCM4CHEE_DEVICENAME)),
        ("GET", "/dcm4chee-arc/ctrl/status"): _static(lambda: as_json(pages.DCM4CHEE_STATUS)),
        ("GET", f"{root}/rs/studies"): lambda request: qido_studies(request, aet, retrieve),
    }


def ohif_routes(base_port: int) -> dict[tuple[str, str], Route]:
    config = pages.ohif_app_config(f"http://127.0.0.1:{base_port + 19}/dicom-web")
    return {
        ("GET", "/"): _static(lambda: html(pages.OHIF_INDEX)),
        ("GET", "/index.html"): _static(lambda: html(pages.OHIF_INDEX)),
        ("GET", "/app-config.js"): _static(lambda: Response(200, config.encode(), "application/javascript")),
    }


def xnat_routes() -> dict[tuple[str, str], Route]:
    def protected(data: Any) -> Route:
        def route(request: Request) -> Response:
            if basic_credentials(request) == pages.XNAT_DEFAULT_CREDENTIALS:
                return as_json(data)
            challenge = [("WWW-Authenticate", f'Basic realm="{pages.XNAT_REALM}"')]
            return Response(401, b"", None, challenge)

        return route

    session = [("Set-Cookie", f"JSESSIONID={secrets.token_hex(16).upper()}; Path=/; HttpOnly")]
    return {
        ("GET", "/"): _static(lambda: redirect("/login")),
        ("GET", "/login"): _static(lambda: Response(200, pages.XNAT_LOGIN.encode(), headers=session)),
        ("GET", "/data/projects"): protected(pages.XNAT_PROJECTS),
        ("GET", "/xapi/siteConfig/buildInfo"): protected(pages.XNAT_BUILD_INFO),
    }


def pacs_routes(login: PacsLogin) -> dict[tuple[str, str], Route]:
    return {
        ("GET", "/"): _static(lambda: redirect("/pacs/login.php")),
        ("GET", "/pacs/"): _static(lambda: redirect("login.php")),
        ("GET", "/pacs/login.php"): login.login_page,
        ("POST", "/pacs/authenticate.php"): login.authenticate,
        ("GET", "/pacs/home.php"): login.home,
    }


def routes_for(key: str, base_port: int) -> dict[tuple[str, str], Route]:
    """The routing table of one fixture: (method, path) -> route."""
    if key == "dcm4chee-arc":
        return dcm4chee_routes(base_port)
    if key == "ohif":
        return ohif_routes(base_port)
    if key == "dicoogle":
        return {
            ("GET", "/"): _static(lambda: html(pages.DICOOGLE_INDEX)),
            ("GET", "/ext/version"): _static(lambda: as_json(pages.DICOOGLE_VERSION)),
        }
    if key == "kheops":
        bearer = [("WWW-Authenticate", 'Bearer error="invalid_token"')]
        return {
            ("GET", "/"): _static(lambda: html(pages.KHEOPS_INDEX)),
            ("GET", "/api/studies"): _static(
                lambda: Response(401, json.dumps(pages.KHEOPS_UNAUTHORIZED).encode(), "application/json", bearer)
            ),
        }
    if key == "meddream":
        return pacs_routes(PacsLogin("MedDream PACS", True, None, blank_login=True))
    if key == "pacsone":
        return pacs_routes(PacsLogin("PacsOne Server", False, pages.BY_KEY["pacsone"].version, blank_login=False))
    if key == "horos":
        return {("GET", "/"): _static(lambda: html(pages.HOROS_INDEX))}
    if key == "xnat":
        return xnat_routes()
    if key == "conquest":
        top = _static(lambda: html(pages.CONQUEST_TOP))
        return {("GET", "/cgi-bin/dgate"): top, ("GET", "/cgi-bin/dgate.exe"): top}
    if key == "dicomweb":
        preflight = [("Access-Control-Allow-Methods", "GET, OPTIONS"), ("Access-Control-Allow-Headers", "*")]
        return {
            ("GET", "/dicom-web/studies"): qido_studies,
            ("OPTIONS", "/dicom-web/studies"): _static(lambda: Response(204, b"", None, preflight)),
        }
    raise ValueError(f"unknown fixture {key!r}")


# Extra headers on every response of a fixture: the generic DICOMweb server's open CORS.
EXTRA_HEADERS: dict[str, list[tuple[str, str]]] = {
    "dicomweb": [("Access-Control-Allow-Origin", "*"), ("Access-Control-Allow-Credentials", "true")],
}


# --- the HTTP servers -------------------------------------------------------------------------


class FixtureServer(ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], fixture: pages.Fixture, base_port: int) -> None:
        self.fixture = fixture
        self.routes = routes_for(fixture.key, base_port)
        super().__init__(address, FixtureHandler)


class FixtureHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 15
    server: FixtureServer

    def do_GET(self) -> None:
        self._serve("GET")

    def do_HEAD(self) -> None:
        self._serve("HEAD")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_OPTIONS(self) -> None:
        self._serve("OPTIONS")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def _serve(self, method: str) -> None:
        raw_length = self.headers.get("Content-Length") or "0"
        length = int(raw_length) if raw_length.isdigit() else -1
        if not 0 <= length <= BODY_LIMIT:
            self._send(method, html(pages.NOT_FOUND, 413 if length > 0 else 400), close=True)
            return
        body = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        request = Request(
            method=method,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            host=self.headers.get("Host", f"127.0.0.1:{self.server.server_address[1]}"),
        )
        route = self.server.routes.get(("GET" if method == "HEAD" else method, request.path))
        self._send(method, route(request) if route else not_found())

    def _send(self, method: str, response: Response, close: bool = False) -> None:
        self.send_response(response.status)
        if response.content_type:
            self.send_header("Content-Type", response.content_type)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if method != "HEAD":
            self.wfile.write(response.body)

    def send_response(self, code: int, message: str | None = None) -> None:
        """Status line, Date, the product's Server header (if any) and the fixture label."""
        self.log_request(code)
        self.send_response_only(code, message)
        fixture = self.server.fixture
        if fixture.server:
            self.send_header("Server", fixture.server)
        self.send_header("Date", self.date_time_string())
        self.send_header(pages.FIXTURE_HEADER, fixture.key)
        for name, value in EXTRA_HEADERS.get(fixture.key, []):
            self.send_header(name, value)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = urlsplit(self.path).path if isinstance(getattr(self, "path", None), str) else "-"
        LOG.info("%s %s %s %s", self.server.fixture.key, getattr(self, "command", "-"), path[:200], code)

    def log_error(self, format: str, *args: Any) -> None:
        LOG.info("%s error %s", self.server.fixture.key, args[0] if args else "-")


def serve(base_port: int, host: str = "127.0.0.1") -> None:
    """Bind every fixture (fails at once if a port is taken), serve until SIGTERM or SIGINT."""
    servers = [FixtureServer((host, base_port + f.offset), f, base_port) for f in pages.FIXTURES]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threads = [
        threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True) for s in servers
    ]
    for thread in threads:
        thread.start()
    LOG.info("web fixtures listening on %s:%d-%d", host, base_port + 10, base_port + 19)
    while not stop.wait(0.2):
        pass
    stoppers = [threading.Thread(target=s.shutdown) for s in servers]  # in parallel: ~one poll interval
    for stopper in stoppers:
        stopper.start()
    for stopper in stoppers:
        stopper.join()
    for server in servers:
        server.server_close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve the lab's web PACS fixtures on base+10..base+19.")
    parser.add_argument("--base-port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    try:
        serve(args.base_port, args.host)
    except OSError as exc:
        LOG.error("cannot listen: %s", exc.strerror)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
