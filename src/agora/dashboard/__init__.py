"""The node's web dashboard: server-rendered pages under `/ui`, on the API's own server behind its guard.

Files:
- `pages.py`: the pages (overview, market, create offer/intent, intents with preview and match breakdown,
  contracts with timeline and release/refund, jobs with live logs, ledger, trust, feature pages);
- `api.py`: `NodeApi`, the in-process way to the node's API (the dashboard reads nothing else);
- `features.py`: the feature pages (training, inference): their readings, forms and charts;
- `forms.py`: the forms' fields and guidance, form -> API body, the API's field errors -> fields;
- `svg.py`: server-side SVG charts;
- `templates/`, `static/` (`htmx.min.js` 2.x vendored from the npm package `htmx.org`, `dashboard.css`).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from agora.dashboard.api import NodeApi
from agora.dashboard.pages import FEATURES, NAV, PREFIX, Feature, router

STATIC = Path(__file__).parent / "static"


def mount_dashboard(app: FastAPI, *, api_token: str | None = None) -> None:
    """Serve the dashboard on `app` (the node's API app): pages under `/ui`, assets under `/ui/static`,
    `/` redirects to `/ui/`. The pages call the API through `app` itself, so the guard applies to both."""
    app.include_router(router(NodeApi(app, api_token)))
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(STATIC)), name="dashboard-static")

    @app.get("/", include_in_schema=False)
    async def _root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)


__all__ = ["FEATURES", "NAV", "PREFIX", "Feature", "NodeApi", "mount_dashboard"]
