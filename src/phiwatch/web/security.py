"""The dashboard's guard: token or login session on every request but /healthz, CSRF on every change,
rate-limited logins, strict headers.

The token comes from the environment variable the configuration names (dashboard.token_env); it is
compared in constant time and never written to a log, a page or a cookie. A login makes a random
session id (kept in memory only: a restart logs everyone out) with its own CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_COOKIE = "phiwatch_session"
LOGIN_COOKIE = "phiwatch_login"  # the login form's CSRF token (double submit), before any session
SESSION_SECONDS = 8 * 3600
OPEN_PATHS = ("/healthz", "/login", "/static/")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

CSP = ("default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'")
HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # "no-referrer" would make a browser send Origin: null
    "cache-control": "no-store",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
}


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).digest()


@dataclass
class RateLimit:
    """At most `attempts` in `window` seconds per client address, and `total` for all of them."""

    attempts: int = 5
    window: float = 60.0
    total: int = 50
    seen: dict[str, deque[float]] = field(default_factory=dict)
    everyone: deque[float] = field(default_factory=deque)

    def allow(self, client: str, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        for times in (self.seen.setdefault(client, deque()), self.everyone):
            while times and times[0] <= now - self.window:
                times.popleft()
        if len(self.seen[client]) >= self.attempts or len(self.everyone) >= self.total:
            return False
        self.seen[client].append(now)
        self.everyone.append(now)
        if len(self.seen) > 10_000:  # bounded memory under a spray of addresses
            self.seen = {k: v for k, v in self.seen.items() if v}
        return True


@dataclass
class LoginSession:
    expires: float
    csrf: str


class Guard:
    """Who may do what: the token, the sessions made by logging in with it, the login rate limit."""

    def __init__(self, token: str, secure: bool, rate: RateLimit | None = None) -> None:
        if len(token) < 16:
            raise ValueError("the dashboard token must be at least 16 characters long")
        self._token = _digest(token)
        self.secure = secure  # served over TLS: cookies are Secure
        self.rate = rate or RateLimit()
        self.sessions: dict[str, LoginSession] = {}

    def token_ok(self, given: str) -> bool:
        return hmac.compare_digest(_digest(given), self._token)

    def login(self) -> tuple[str, LoginSession]:
        now = time.time()
        self.sessions = {k: s for k, s in self.sessions.items() if s.expires > now}
        sid = secrets.token_urlsafe(32)
        session = LoginSession(expires=now + SESSION_SECONDS, csrf=secrets.token_urlsafe(32))
        self.sessions[sid] = session
        return sid, session

    def session(self, sid: str | None) -> LoginSession | None:
        if not sid:
            return None
        session = self.sessions.get(sid)
        if session is None or session.expires <= time.time():
            self.sessions.pop(sid, None)
            return None
        return session

    def logout(self, sid: str | None) -> None:
        if sid:
            self.sessions.pop(sid, None)

    def set_cookie(self, response: Response, name: str, value: str, max_age: int | None) -> None:
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True, samesite="strict",
                            secure=self.secure)


def _is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


def denied(request: Request, status: int = 401, message: str = "authentication required") -> Response:
    if _is_api(request.url.path) or request.method not in SAFE_METHODS:
        headers = {"www-authenticate": 'Bearer realm="phiwatch"'} if status == 401 else None
        return JSONResponse({"error": message}, status_code=status, headers=headers)
    return RedirectResponse("/login", status_code=303)


class SecurityHeaders:
    """Every response, errors included, gets the strict headers (and HSTS under TLS)."""

    def __init__(self, app: ASGIApp, tls: bool) -> None:
        self.app = app
        self.extra = [(k.encode(), v.encode()) for k, v in HEADERS.items()]
        if tls:
            self.extra.append((b"strict-transport-security", b"max-age=31536000"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k, v) for k, v in self.extra if k not in names]
            await send(message)

        await self.app(scope, receive, with_headers)


def authenticate(guard: Guard, request: Request) -> tuple[str, LoginSession | None] | None:
    """("token", None) for a right bearer token, ("session", s) for a login session, None otherwise.
    A wrong bearer token is refused even beside a valid session cookie."""
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not guard.token_ok(given.strip()):
            return None
        return "token", None
    session = guard.session(request.cookies.get(SESSION_COOKIE))
    return ("session", session) if session is not None else None


def same_origin(request: Request) -> bool:
    """A browser's cross-site request names another origin; none named (curl, an API client) passes."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


Endpoint = Callable[[Request], Awaitable[Response]]


def protected(guard: Guard, endpoint: Endpoint) -> Endpoint:
    """An endpoint behind the token or a session; a state change also needs the session's CSRF token
    (form field `csrf` or header X-CSRF-Token) and, from a browser, the dashboard's own origin."""

    async def guarded(request: Request) -> Response:
        who = authenticate(guard, request)
        if who is None:
            return denied(request)
        kind, session = who
        request.state.csrf = session.csrf if session is not None else ""
        request.state.form = None
        if request.method not in SAFE_METHODS:
            if not same_origin(request):
                return denied(request, 403, "cross-origin request refused")
            if kind == "session":
                assert session is not None
                given = request.headers.get("x-csrf-token", "")
                if not given and request.headers.get("content-type", "").startswith(
                        ("application/x-www-form-urlencoded", "multipart/form-data")):
                    form = await request.form(max_files=0, max_fields=20, max_part_size=16_384)
                    request.state.form = form
                    given = str(form.get("csrf", ""))
                if not given or not hmac.compare_digest(given.encode(), session.csrf.encode()):
                    return denied(request, 403, "CSRF token missing or wrong")
        return await endpoint(request)

    guarded.__name__ = getattr(endpoint, "__name__", "guarded")
    return guarded


async def form_of(request: Request) -> FormData:
    """The request's form, read once (the guard may have read it for the CSRF token)."""
    form = getattr(request.state, "form", None)
    if form is None:
        form = await request.form(max_files=0, max_fields=20, max_part_size=16_384)
        request.state.form = form
    return form


def client_of(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


__all__: list[Any] = ["CSP", "Guard", "RateLimit", "SecurityHeaders", "authenticate", "protected"]
