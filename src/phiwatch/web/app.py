"""The dashboard: server-rendered pages and a JSON API under /api/ over the same data (data.py).

Every route but /healthz, /login and the stylesheet is behind the guard (security.py); every state
change (triage, run now, logout) is a POST with the session's CSRF token.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.orm import Session
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..store import Store
from ..watch import lifecycle
from . import charts, data
from .security import (
    LOGIN_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    Guard,
    SecurityHeaders,
    client_of,
    form_of,
    protected,
    same_origin,
)

HERE = Path(__file__).parent
FILTERS = ("state", "severity", "protocol", "job", "host", "search")


def _templates() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.globals["severities"] = data.SEVERITIES
    return env


def _int(text: str | None, default: int, low: int = 1, high: int = 1_000_000) -> int:
    try:
        return max(low, min(high, int(text or default)))
    except ValueError:
        return default


def _filters(request: Request) -> dict[str, Any]:
    params = request.query_params
    found: dict[str, Any] = {}
    for name in FILTERS:
        value = params.get(name, "").strip()[:200]
        if value:
            found[name] = value
    return found


class Dashboard:
    def __init__(self, store: Store, guard: Guard) -> None:
        self.store = store
        self.guard = guard
        self.env = _templates()
        self._overview: tuple[tuple, dict[str, Any]] | None = None  # (data.version, data.overview)

    # -- helpers ------------------------------------------------------------------------------
    def session(self) -> Session:
        return Session(self.store.engine)

    def page(self, request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault("csrf", getattr(request.state, "csrf", ""))
        context.setdefault("path", request.url.path)
        return HTMLResponse(self.env.get_template(name).render(**context), status_code=status)

    def not_found(self, request: Request, what: str) -> Response:
        if request.url.path.startswith("/api/"):
            return JSONResponse({"error": f"no such {what}"}, status_code=404)
        return self.page(request, "error.html.j2", 404, message=f"No such {what}.")

    # -- open routes --------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok")

    async def login_form(self, request: Request, message: str = "", status: int = 200) -> Response:
        import secrets

        token = secrets.token_urlsafe(32)
        response = self.page(request, "login.html.j2", status, login_csrf=token, message=message)
        self.guard.set_cookie(response, LOGIN_COOKIE, token, 600)
        return response

    async def login(self, request: Request) -> Response:
        import hmac

        if not same_origin(request):
            return JSONResponse({"error": "cross-origin request refused"}, status_code=403)
        if not self.guard.rate.allow(client_of(request)):
            return await self.login_form(request, "Too many attempts: wait a minute.", 429)
        form = await form_of(request)
        expected = request.cookies.get(LOGIN_COOKIE, "")
        given = str(form.get("csrf", ""))
        if not expected or not hmac.compare_digest(given.encode(), expected.encode()):
            return await self.login_form(request, "The form expired: try again.", 403)
        if not self.guard.token_ok(str(form.get("token", ""))):
            return await self.login_form(request, "Wrong token.", 401)
        sid, _ = self.guard.login()
        response = RedirectResponse("/", status_code=303)
        self.guard.set_cookie(response, SESSION_COOKIE, sid, SESSION_SECONDS)
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    async def logout(self, request: Request) -> Response:
        self.guard.logout(request.cookies.get(SESSION_COOKIE))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # -- pages and their API twins ----------------------------------------------------------
    async def overview(self, request: Request) -> Response:
        with self.session() as session:
            key = data.version(session)
            if self._overview is not None and self._overview[0] == key:
                result = self._overview[1]
            else:
                result = data.overview(session)
                self._overview = (key, result)
        if request.url.path.startswith("/api/"):
            return JSONResponse(result)
        return self.page(request, "overview.html.j2", data=result, charts=charts.overview_charts(result))

    def _findings(self, request: Request) -> tuple[dict[str, Any], dict[str, Any], str, bool]:
        params = request.query_params
        filters = _filters(request)
        sort = params.get("sort", "severity")
        sort = sort if sort in lifecycle.SORTS else "severity"
        descending = params.get("order", "desc") != "asc"
        with self.session() as session:
            result = data.findings(session, filters, _int(params.get("page"), 1), sort, descending,
                                   _int(params.get("per_page"), data.PER_PAGE, 1, 500))
        return result, filters, sort, descending

    async def findings(self, request: Request) -> Response:
        result, filters, sort, descending = self._findings(request)
        if request.url.path.startswith("/api/"):
            return JSONResponse(dict(result, filters=filters, sort=sort, order="desc" if descending else "asc"))
        with self.session() as session:
            options = data.choices(session)
        return self.page(request, "findings.html.j2", data=result, filters=filters, sort=sort,
                         order="desc" if descending else "asc", options=options)

    async def findings_csv(self, request: Request) -> Response:
        filters = _filters(request)
        out = io.StringIO()
        columns = ["id", "job", "host", "port", "protocol", "check_id", "severity", "state", "title",
                   "first_seen", "last_seen", "fixed_at", "exposure_days", "studies", "files", "accepted_until"]
        writer = csv.DictWriter(out, columns, extrasaction="ignore")
        writer.writeheader()
        with self.session() as session:
            page = 1
            while page <= 200:  # at most 200,000 rows in one export
                result = data.findings(session, filters, page, "severity", True, 1000)
                for row in result["findings"]:
                    writer.writerow({k: _cell(v) for k, v in row.items()})
                if page >= result["pages"]:
                    break
                page += 1
        return Response(out.getvalue(), media_type="text/csv; charset=utf-8",
                        headers={"content-disposition": 'attachment; filename="phiwatch-findings.csv"'})

    async def finding(self, request: Request) -> Response:
        finding_id = _int(request.path_params["id"], 0, 0)
        with self.session() as session:
            result = data.finding(session, finding_id)
        if result is None:
            return self.not_found(request, "finding")
        if request.url.path.startswith("/api/"):
            return JSONResponse(result)
        return self.page(request, "finding.html.j2", f=result, message=request.query_params.get("done", ""))

    async def triage(self, request: Request) -> Response:
        finding_id = _int(request.path_params["id"], 0, 0)
        action = request.path_params["action"]
        api = request.url.path.startswith("/api/")
        if api and request.headers.get("content-type", "").startswith("application/json"):
            try:
                body = await request.json()
            except ValueError:
                return JSONResponse({"error": "the body is not JSON"}, status_code=400)
            fields = body if isinstance(body, dict) else {}
        else:
            fields = dict(await form_of(request))
        note = str(fields.get("note") or "").strip()[:2000] or None
        try:
            with self.session() as session, session.begin():
                if action == "acknowledge":
                    lifecycle.acknowledge(session, finding_id, note)
                elif action == "accept":
                    lifecycle.accept_risk(session, finding_id, _until(str(fields.get("until") or "")), note or "")
                else:
                    return self.not_found(request, "action")
        except (lifecycle.TriageError, ValueError) as exc:
            message = str(exc).splitlines()[0][:200] if str(exc) else "invalid request"
            if api:
                return JSONResponse({"error": message}, status_code=400)
            return self.page(request, "error.html.j2", 400, message=message)
        if api:
            with self.session() as session:
                return JSONResponse(data.finding(session, finding_id))
        return RedirectResponse(f"/findings/{finding_id}?done={action}", status_code=303)

    async def host(self, request: Request) -> Response:
        address = request.path_params["host"][:255]
        with self.session() as session:
            result = data.host(session, address)
        if not result["services"] and not result["findings"]:
            return self.not_found(request, "host")
        if request.url.path.startswith("/api/"):
            return JSONResponse(result)
        return self.page(request, "host.html.j2", h=result)

    async def scans(self, request: Request) -> Response:
        params = request.query_params
        with self.session() as session:
            result = data.scans(session, _int(params.get("page"), 1), params.get("job", "")[:128] or None)
        if request.url.path.startswith("/api/"):
            return JSONResponse(result)
        return self.page(request, "scans.html.j2", data=result, job=params.get("job", ""))

    async def diff(self, request: Request) -> Response:
        old, new = request.query_params.get("old", "")[:64], request.query_params.get("new", "")[:64]
        result = data.scan_diff(self.store, old, new) if old and new else None
        if result is None:
            return self.not_found(request, "pair of scans")
        if request.url.path.startswith("/api/"):
            return JSONResponse(result)
        return self.page(request, "diff.html.j2", d=result)

    async def jobs(self, request: Request) -> Response:
        with self.session() as session:
            result = data.jobs(session)
        if request.url.path.startswith("/api/"):
            return JSONResponse({"jobs": result})
        return self.page(request, "jobs.html.j2", jobs=result, message=request.query_params.get("done", ""))

    async def run_now(self, request: Request) -> Response:
        name = request.path_params["name"][:128]
        try:
            with self.session() as session, session.begin():
                lifecycle.request_run(session, name)
        except lifecycle.TriageError:
            return self.not_found(request, "job")
        if request.url.path.startswith("/api/"):
            return JSONResponse({"job": name, "run_requested": True}, status_code=202)
        return RedirectResponse("/jobs?done=run", status_code=303)

    # -- the app ------------------------------------------------------------------------------
    def routes(self) -> list[BaseRoute]:
        guard = self.guard

        def both(path: str, endpoint: Any, methods: list[str] | None = None) -> list[BaseRoute]:
            return [Route(path, protected(guard, endpoint), methods=methods),
                    Route("/api" + (path if path != "/" else "/overview"), protected(guard, endpoint),
                          methods=methods)]

        return [
            Route("/healthz", self.healthz),
            Route("/favicon.ico", lambda request: Response(status_code=204)),  # no icon, no 404 logged
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", protected(guard, self.logout), methods=["POST"]),
            *both("/", self.overview),
            Route("/findings.csv", protected(guard, self.findings_csv)),
            Route("/api/findings.csv", protected(guard, self.findings_csv)),
            *both("/findings", self.findings),
            *both("/findings/{id:int}", self.finding),
            *both("/findings/{id:int}/{action:str}", self.triage, ["POST"]),
            *both("/hosts/{host:str}", self.host),
            *both("/scans", self.scans),
            *both("/scans/diff", self.diff),
            *both("/jobs", self.jobs),
            *both("/jobs/{name:str}/run", self.run_now, ["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]


def _cell(value: Any) -> Any:
    """No spreadsheet formula from a cell (CSV injection): text starting with = + - @ gets a quote."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _until(text: str) -> datetime:
    """An expiry given as a date (end of that day, UTC) or an ISO date and time."""
    text = text.strip()
    if not text:
        raise ValueError("accepting a risk needs an expiry date")
    try:
        if len(text) == 10:
            return datetime.combine(datetime.fromisoformat(text).date(), time(23, 59, 59), UTC)
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("the expiry must be a date like 2027-01-31") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def create_app(store: Store, token: str, tls: bool = False) -> Any:
    """The ASGI app: the dashboard's routes inside the strict headers."""
    dashboard = Dashboard(store, Guard(token, secure=tls))
    app = Starlette(routes=dashboard.routes())
    app.state.dashboard = dashboard
    return SecurityHeaders(app, tls)
