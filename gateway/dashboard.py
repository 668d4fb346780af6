"""Serve the operator dashboard: a built single-page app, no Node at run time.

The source is in `dashboard/` (TypeScript, built by Vite, `make dashboard`); the
build is committed under `gateway/static/dashboard/`, so the gateway serves it as
plain files: `index.html` at `/`, its hashed assets under `/dashboard/`. The page
talks only to this gateway (its Content-Security-Policy forbids anything else) and
keeps the operator key in the tab's sessionStorage.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parent / "static" / "dashboard"

#: Same origin only: no CDN, no third-party script, nothing sent elsewhere. Styles
#: allow inline `style` attributes, which the charts set on their canvases.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; connect-src 'self'; img-src 'self' data:; "
    "style-src 'self' 'unsafe-inline'; font-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",  # the assets it names are hashed and cache forever
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


def mount_dashboard(app: FastAPI, static: Path = STATIC) -> None:
    """Add `GET /` (the page) and `/dashboard/*` (its assets) to the app."""

    @app.get("/", include_in_schema=False)
    async def dashboard_index() -> Response:
        index = static / "index.html"
        if not index.is_file():
            return PlainTextResponse(
                "the dashboard is not built: run `make dashboard` (needs Node 20)", status_code=503
            )
        return FileResponse(index, headers=_HEADERS)

    app.mount("/dashboard", StaticFiles(directory=static, check_dir=False), name="dashboard")
