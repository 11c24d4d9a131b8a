"""The migration reports web app, mounted in Airflow's API server by plugins/dbsplit_reports.py.

Routes (under PREFIX, /dbsplit-reports; always linked with a trailing slash, without it Airflow's own
UI answers):

    /                                        every run with evidence, newest first
    /runs/<dag_id>/                          the runs of one DAG
    /runs/<dag_id>/<run_id>/                 one run: its services and tables
    /runs/<dag_id>/<run_id>/tables/<table>   one table: counts, rejects, checksum, expectations, timings
    /files/<path>                            a file of the reports dir (GX Data Docs, evidence JSON)

Authentication: Airflow mounts plugin apps without any protection, so every route here depends on
`current_user`: the token is the `Authorization: Bearer` header (API clients, from POST /auth/token)
or else the `_token` cookie that the Airflow UI sets at login; it is validated by Airflow's auth
manager (`get_user_from_token`: signature, audience, expiry, revocation). Without a valid token a
browser (Accept: text/html) is redirected to the auth manager's login page with next= back here, and
anything else gets 401. A logged-in user must also be allowed to read the DAG's runs
(`is_authorized_dag`, GET, RUN), else 403.

Files: only regular files inside the reports dir are served, whatever the path says (`..`, %2e%2e,
absolute paths, symlinks pointing out): see dbsplit.reports.pages.report_file.

Airflow is imported lazily (inside requests): importing this module costs only FastAPI and Jinja2.
"""

from __future__ import annotations

import logging
import mimetypes
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from dbsplit.model import evidence
from dbsplit.reports import pages

log = logging.getLogger(__name__)

PREFIX = "/dbsplit-reports"
COOKIE = "_token"  # airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN

# Our pages load nothing but themselves (inline CSS, no script, no external asset).
PAGE_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
            "frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
# Files from the reports dir (GX Data Docs): their own folder's assets only, and no script at all.
# The Airflow UI keeps its token in a cookie that scripts can read; a page written into the reports
# dir must not be able to run code on the Airflow origin. (GX's CDN assets are unreachable offline
# anyway: the Data Docs' validation content is plain HTML.)
FILE_CSP = ("default-src 'none'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "font-src 'self'; frame-ancestors 'self'; base-uri 'none'; form-action 'none'")
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin",
                    "Cache-Control": "no-store"}


class LoginRequired(Exception):
    """No valid Airflow token: 401, or a redirect to the login page for a browser."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _auth_manager() -> Any:
    """The API server's auth manager; outside it (tests, tools) a fresh one from the configuration."""
    from airflow.api_fastapi.app import create_auth_manager, get_auth_manager

    try:
        return get_auth_manager()
    except RuntimeError:  # not initialised: we are not running inside the API server
        return create_auth_manager()


def request_token(request: Request) -> str | None:
    """The Bearer token of the Authorization header, else the UI's `_token` cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(COOKIE) or None


async def current_user(request: Request) -> Any:
    """The Airflow user of the request's token (see the module doc); raises LoginRequired."""
    token = request_token(request)
    if not token:
        raise LoginRequired("Not authenticated")
    from jwt import ExpiredSignatureError, InvalidTokenError

    try:
        return await _auth_manager().get_user_from_token(token)
    except ExpiredSignatureError:
        raise LoginRequired("Token expired") from None
    except InvalidTokenError:
        raise LoginRequired("Invalid token") from None


def authorize_dag(user: Any, dag_id: str) -> None:
    """403 unless the user may read the runs of this DAG."""
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    allowed = _auth_manager().is_authorized_dag(
        method="GET", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user)
    if not allowed:
        raise HTTPException(403, f"Forbidden: you may not read the runs of DAG {dag_id}")


def _may_read(user: Any, dag_id: str) -> bool:
    try:
        authorize_dag(user, dag_id)
    except HTTPException:
        return False
    return True


def _wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def _request_target(request: Request) -> str:
    """Path and query of the request as the client sent them (still percent-encoded), for next=."""
    raw = request.scope.get("raw_path")
    path = raw.decode("latin-1") if raw else quote(request.url.path)
    path = "/" + path.lstrip("/")  # never //host (a next= to another site)
    return path + (f"?{request.url.query}" if request.url.query else "")


def _base(request: Request) -> str:
    """This app's URL prefix as the browser sees it, with a trailing slash (root_path of the mount)."""
    return request.scope.get("root_path", "").rstrip("/") + "/"


def _root() -> Path:
    return evidence.reports_dir()


def _page(html: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(html, status_code=status, headers={**SECURITY_HEADERS, "Content-Security-Policy": PAGE_CSP})


def _not_found(request: Request, message: str) -> Response:
    if _wants_html(request):
        return _page(pages.message_page(_base(request), "Not found", message, 404), 404)
    raise HTTPException(404, message)


def create_app() -> FastAPI:
    """The reports app; the reports dir is looked up on every request (evidence.reports_dir())."""
    app = FastAPI(title="dbsplit migration reports", docs_url=None, redoc_url=None, openapi_url=None)
    # registered as the decorators would (their typing accepts the handlers' narrow exception types)
    app.exception_handler(LoginRequired)(_login_required)
    app.exception_handler(StarletteHTTPException)(_http_error)
    app.get("/", name="runs", response_class=HTMLResponse)(_runs)
    app.get("/runs/{dag_id}/", name="dag_runs", response_class=HTMLResponse)(_dag_runs)
    app.get("/runs/{dag_id}/{run_id}/", name="run", response_class=HTMLResponse)(_run)
    app.get("/runs/{dag_id}/{run_id}/tables/{table}", name="table", response_class=HTMLResponse)(_table)
    app.get("/files/{path:path}", name="files")(_files)
    return app


# The Airflow user of the request, for every route (see current_user).
User = Annotated[Any, Depends(current_user)]


async def _login_required(request: Request, exc: LoginRequired) -> Response:
    """No valid token: a browser goes to the login page (and comes back), anything else gets 401."""
    if _wants_html(request) and "authorization" not in request.headers:
        target = _request_target(request)
        login = _auth_manager().get_url_login(next_url=target)
        return RedirectResponse(login, status_code=307, headers=SECURITY_HEADERS)
    return JSONResponse({"detail": exc.reason}, status_code=401,
                        headers={"WWW-Authenticate": "Bearer", **SECURITY_HEADERS})


async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
    """403 and 404 as pages for a browser; every error as JSON with the security headers otherwise."""
    if _wants_html(request) and exc.status_code in (403, 404):
        title = "Forbidden" if exc.status_code == 403 else "Not found"
        return _page(pages.message_page(_base(request), title, str(exc.detail), exc.status_code),
                     exc.status_code)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code,
                        headers={**SECURITY_HEADERS, **(exc.headers or {})})


async def _runs(request: Request, user: User) -> Response:
    """Every run with evidence that the user may read, newest first."""
    root = _root()
    visible = [r for r in pages.list_runs(root) if _may_read(user, r.dag_id)]
    return _page(pages.runs_page(root, _base(request), visible))


async def _dag_runs(request: Request, dag_id: str, user: User) -> Response:
    authorize_dag(user, dag_id)
    root = _root()
    return _page(pages.runs_page(root, _base(request), pages.list_runs(root, dag_id), dag_id=dag_id))


async def _run(request: Request, dag_id: str, run_id: str, user: User) -> Response:
    authorize_dag(user, dag_id)
    root = _root()
    report = pages.load_run(root, dag_id, run_id)
    if report is None:
        return _not_found(request, f"No validation evidence for run {run_id} of {dag_id} (yet): "
                                   "it is written when the run's validate tasks finish.")
    return _page(pages.run_page(root, _base(request), report))


async def _table(request: Request, dag_id: str, run_id: str, table: str, user: User) -> Response:
    authorize_dag(user, dag_id)
    root = _root()
    report = pages.load_run(root, dag_id, run_id)
    found = report.table(table) if report else None
    if report is None or found is None:
        return _not_found(request, f"No validation evidence for table {table} in run {run_id} of {dag_id}.")
    return _page(pages.table_page(root, _base(request), report, found))


async def _files(request: Request, path: str, user: User) -> Response:
    """A file of the reports dir; one under runs/<dag_id>/ needs the right to read that DAG's runs."""
    parts = path.split("/")
    if len(parts) > 2 and parts[0] == "runs":
        authorize_dag(user, parts[1])
    found = pages.report_file(_root(), path)
    if found is None:
        return _not_found(request, f"No file {path} in the reports directory.")
    media_type = mimetypes.guess_type(found.name)[0] or "application/octet-stream"
    if media_type.startswith("text/") or media_type in ("application/json", "application/javascript"):
        media_type += "; charset=utf-8"
    return FileResponse(found, media_type=media_type,
                        headers={**SECURITY_HEADERS, "Content-Security-Policy": FILE_CSP})


app = create_app()


def external_views(prefix: str | None = None) -> list[dict[str, Any]]:
    """The plugin's UI entries: a "Migration reports" navigation item and a tab on every DAG run.

    Both are shown inside the Airflow UI (url_route: an iframe, same origin, so the `_token` cookie
    comes along). hrefs end with a slash: without it the UI's own index page would answer.
    """
    base = (prefix if prefix is not None else _api_root_path() + PREFIX.lstrip("/")).rstrip("/")
    return [
        {"name": "Migration reports", "href": f"{base}/", "destination": "nav",
         "url_route": "migration-reports", "nav_top_level": True},
        {"name": "Migration report", "href": f"{base}/runs/{{DAG_ID}}/{{RUN_ID}}/", "destination": "dag_run",
         "url_route": "migration-report"},
    ]


def _api_root_path() -> str:
    """The path of [api] base_url with a trailing slash ("/" unless Airflow is served under a path)."""
    from urllib.parse import urlsplit

    try:
        from airflow.configuration import conf

        base_url = conf.get("api", "base_url", fallback="") or ""
    except Exception:  # noqa: BLE001 - no Airflow configuration: served at the root
        base_url = ""
    path = urlsplit(base_url).path or "/"
    return path if path.endswith("/") else path + "/"
