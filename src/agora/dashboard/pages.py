"""The dashboard's pages, under `/ui`: each one reads the node's API (`NodeApi`) and renders a template.

Pages work without JavaScript; htmx (vendored, `static/htmx.min.js`) only refreshes parts of them (the
overview's health, a job's logs). Forms post to the page, which calls the API and shows its field errors
next to the fields, or redirects to what was made (post/redirect/get)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from jinja2 import ChainableUndefined

from agora.dashboard.api import NodeApi
from agora.dashboard.features import FEATURES, Feature, quote_body, training_spec
from agora.dashboard.forms import (
    INTENT_FIELDS,
    OFFER_FIELDS,
    field_errors,
    intent_body,
    offer_body,
    parse_form,
)
from agora.dashboard.show import short, show, when_ago
from agora.dashboard.svg import bar_chart
from agora.errors import AgoraError

HERE = Path(__file__).parent
PREFIX = "/ui"


NAV: tuple[tuple[str, str], ...] = (
    ("", "Overview"),
    ("market", "Market"),
    ("offers/new", "Create offer"),
    ("intents", "Intents"),
    ("intents/new", "Create intent"),
    ("contracts", "Contracts"),
    ("jobs", "Jobs"),
    ("ledger", "Ledger"),
    ("trust", "Trust"),
    *((f.slug, f.title) for f in FEATURES),
)


def _when(at: Any) -> str:
    """A unix time as UTC to the millisecond (timelines), or the value as given when it is not a number."""
    if not isinstance(at, int | float) or isinstance(at, bool):
        return str(at or "")
    return datetime.fromtimestamp(at, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


_short = short


def router(api: NodeApi) -> APIRouter:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["short"] = _short
    templates.env.filters["when"] = _when
    templates.env.filters["show"] = show  # any API value, never as a Python repr (dashboard/show.py)
    templates.env.filters["when_ago"] = when_ago
    templates.env.undefined = ChainableUndefined  # a field an older or newer node lacks renders empty
    pages = APIRouter(prefix=PREFIX, include_in_schema=False)

    def render(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
        ctx.setdefault("title", name.removesuffix(".html").replace("_", " ").title())
        return templates.TemplateResponse(request, name, {"nav": NAV, "prefix": PREFIX, **ctx}, status_code=status)

    def see(path: str, **query: str) -> RedirectResponse:
        q = "&".join(f"{k}={quote(v)}" for k, v in query.items())
        return RedirectResponse(f"{PREFIX}/{path}" + (f"?{q}" if q else ""), status_code=303)

    @pages.get("", response_class=HTMLResponse)
    @pages.get("/", response_class=HTMLResponse)
    async def overview(request: Request) -> HTMLResponse:
        node, node_err = await api.read("/node")
        health, health_err = await api.read("/health")
        peers, peers_err = await api.read("/peers")
        return render(
            request,
            "overview.html",
            title="Overview",
            node=node,
            health=health,
            peers=(peers or {}).get("peers", []),
            errors=[e for e in (node_err, health_err, peers_err) if e],
        )

    @pages.get("/health", response_class=HTMLResponse)
    async def health_part(request: Request) -> HTMLResponse:
        health, err = await api.read("/health")
        return render(request, "_health.html", health=health, error=err)

    @pages.get("/market", response_class=HTMLResponse)
    async def market(request: Request) -> HTMLResponse:
        market, err = await api.read("/market")
        summary, summary_err = await api.read("/metrics_summary")
        offers, offers_err = await api.read("/offers")
        providers = (market or {}).get("providers", [])
        chart = bar_chart(
            [(_short(p["provider"]), p["free"].get("cpu_millis", 0) / 1000) for p in providers],
            title="Free CPU by provider (cores)",
        )
        rej = (summary or {}).get("matches", {}).get("top_rejections", [])
        return render(
            request,
            "market.html",
            title="Market",
            market=market,
            providers=providers,
            chart=chart,
            summary=summary,
            offers=(offers or {}).get("offers", []),
            rejections_chart=bar_chart([(r["code"], r["count"]) for r in rej], title="Top rejection reasons"),
            errors=[e for e in (err, summary_err, offers_err) if e],
        )

    async def _form(
        request: Request,
        fields: Any,
        make: Callable[[dict[str, str]], dict[str, Any]],
        send: Callable[[dict[str, Any]], Awaitable[Any]],
        done: Callable[[Any], Response],
        template: str,
        title: str,
    ) -> Response:
        values = {f.name: f.default for f in fields}
        if request.method == "POST":
            form = parse_form(await request.body())
            values = {f.name: form.get(f.name, "") for f in fields}
            try:
                made = await send(make(form))
            except AgoraError as err:
                by_field, general = field_errors(err, fields)
                return render(  # 200: the page answers; the refusal is in it, next to the fields (role=alert)
                    request,
                    template,
                    200,
                    title=title,
                    fields=fields,
                    values=values,
                    field_errors=by_field,
                    general=general,
                    error=err,
                )
            return done(made)
        return render(request, template, title=title, fields=fields, values=values, field_errors={}, general=[])

    @pages.api_route("/offers/new", methods=["GET", "POST"], response_class=HTMLResponse)
    async def new_offer(request: Request) -> Response:
        return await _form(
            request,
            OFFER_FIELDS,
            offer_body,
            lambda body: api.post("/offers", body),
            lambda made: see("market", made=str(made.get("offer_id", ""))),
            "offer_new.html",
            "Create an offer",
        )

    @pages.api_route("/intents/new", methods=["GET", "POST"], response_class=HTMLResponse)
    async def new_intent(request: Request) -> Response:
        return await _form(
            request,
            INTENT_FIELDS,
            intent_body,
            lambda body: api.post("/intents", body),
            lambda made: see(f"intents/{quote(str(made['intent_id']))}"),
            "intent_new.html",
            "Create an intent",
        )

    @pages.get("/intents", response_class=HTMLResponse)
    async def intents(request: Request) -> HTMLResponse:
        found, err = await api.read("/intents")
        return render(
            request,
            "intents.html",
            title="Intents",
            intents=(found or {}).get("intents", []),
            errors=[e for e in (err,) if e],
        )

    @pages.get("/intents/{intent_id}", response_class=HTMLResponse)
    async def intent(request: Request, intent_id: str) -> HTMLResponse:
        doc, err = await api.read(f"/intents/{quote(intent_id)}")
        return render(
            request,
            "intent.html",
            title=f"Intent {intent_id}",
            intent=doc,
            result=None,
            errors=[e for e in (err,) if e],
        )

    @pages.post("/intents/{intent_id}/match", response_class=HTMLResponse)
    async def match(request: Request, intent_id: str) -> HTMLResponse:
        form = parse_form(await request.body())
        preview = form.get("preview") == "on"
        result, error = None, None
        try:
            result = await api.post("/match", {"intent_id": intent_id, "preview": preview})
        except AgoraError as err:
            error = err
        doc, err2 = await api.read(f"/intents/{quote(intent_id)}")
        return render(
            request,
            "intent.html",
            title=f"Intent {intent_id}",
            intent=doc,
            result=result,
            preview=preview,
            errors=[e for e in (error, err2) if e],
            rejections_chart=bar_chart(
                sorted(((k, v) for k, v in (result or {}).get("rejections", {}).items()), key=lambda kv: -kv[1]),
                title="Rejections by reason",
            ),
        )

    @pages.get("/contracts", response_class=HTMLResponse)
    async def contracts(request: Request) -> HTMLResponse:
        found, err = await api.read("/contracts")
        return render(
            request,
            "contracts.html",
            title="Contracts",
            contracts=(found or {}).get("contracts", []),
            errors=[e for e in (err,) if e],
        )

    @pages.get("/contracts/{contract_id}", response_class=HTMLResponse)
    async def contract(
        request: Request, contract_id: str, done: str = "", code: str = "", message: str = ""
    ) -> HTMLResponse:
        doc, err = await api.read(f"/contracts/{quote(contract_id)}")
        outcome = {"done": done, "code": code, "message": message} if (done or code) else None
        return render(
            request,
            "contract.html",
            title=f"Contract {contract_id}",
            contract=doc,
            outcome=outcome,
            errors=[e for e in (err,) if e],
        )

    @pages.post("/contracts/{contract_id}/{action}", response_class=HTMLResponse)
    async def settle(request: Request, contract_id: str, action: str) -> Response:
        if action not in ("release", "refund", "dispute"):
            raise AgoraError("not_found", f"no such action {action!r}")
        form = parse_form(await request.body())
        body: dict[str, Any] = {"reason": form["reason"]} if form.get("reason") and action != "release" else {}
        try:
            await api.post(f"/contracts/{quote(contract_id)}/{action}", body)
        except AgoraError as err:
            return see(f"contracts/{quote(contract_id)}", code=err.code, message=err.message)
        return see(f"contracts/{quote(contract_id)}", done=action)

    @pages.get("/jobs", response_class=HTMLResponse)
    async def jobs(request: Request) -> HTMLResponse:
        found, err = await api.read("/jobs")
        return render(
            request, "jobs.html", title="Jobs", jobs=(found or {}).get("jobs", []), errors=[e for e in (err,) if e]
        )

    @pages.get("/jobs/{job_id}", response_class=HTMLResponse)
    async def job(request: Request, job_id: str) -> HTMLResponse:
        path = f"/jobs/{quote(job_id)}"
        doc, err = await api.read(path)
        why, why_err = await api.read(f"{path}/why")
        logs, logs_err = await api.read(f"{path}/logs")
        outputs, out_err = await api.read(f"{path}/outputs")
        return render(
            request,
            "job.html",
            title=f"Job {job_id}",
            job=doc,
            why=why,
            logs=logs,
            outputs=(outputs or {}).get("outputs", []),
            errors=[e for e in (err, why_err, logs_err, out_err) if e],
        )

    @pages.get("/jobs/{job_id}/logs", response_class=HTMLResponse)
    async def job_logs(request: Request, job_id: str, after: int = 0) -> HTMLResponse:
        logs, err = await api.read(f"/jobs/{quote(job_id)}/logs", after=after)
        return render(request, "_logs.html", job_id=job_id, logs=logs, error=err)

    @pages.get("/ledger", response_class=HTMLResponse)
    async def ledger(request: Request) -> HTMLResponse:
        info, err = await api.read("/ledger")
        balance, bal_err = await api.read("/ledger/balance")
        entries, ent_err = await api.read("/ledger/entries")
        summary, sum_err = await api.read("/metrics_summary")
        escrow = (summary or {}).get("escrow", {})
        chart = bar_chart(
            [(k, v) for k, v in escrow.items() if isinstance(v, int | float)], title="Escrow (minor units)"
        )
        return render(
            request,
            "ledger.html",
            title="Ledger",
            info=info,
            balance=balance,
            entries=(entries or {}).get("entries", []),
            escrow=escrow,
            chart=chart,
            errors=[e for e in (err, bal_err, ent_err, sum_err) if e],
        )

    @pages.get("/trust", response_class=HTMLResponse)
    async def trust(request: Request) -> HTMLResponse:
        doc, err = await api.read("/trust")
        providers = (doc or {}).get("providers", [])
        chart = bar_chart(
            [(_short(p.get("provider")), float(p.get("score", 0))) for p in providers], title="Trust score by provider"
        )
        return render(
            request,
            "trust.html",
            title="Trust",
            trust=doc,
            providers=providers,
            chart=chart,
            errors=[e for e in (err,) if e],
        )

    for feature in FEATURES:
        pages.add_api_route(
            f"/{feature.slug}", _feature_page(api, feature, render), methods=["GET"], response_class=HTMLResponse
        )

    training, inference = FEATURES

    @pages.post("/training", response_class=HTMLResponse)
    async def start_training(request: Request) -> Response:
        """Start a run from the form: on success, back to the page at the run; else the page with the errors."""
        form = parse_form(await request.body())
        try:
            started = await api.call(
                "POST",
                "/training/runs",
                json=training_spec(form.get("spec", "")),
                params={"providers": form.get("providers") or "peers", "budget": form.get("budget") or None},
            )
        except AgoraError as err:
            return await _feature_view(api, training, render, request, form=form, error=err)
        run_id = str(started.get("run_id", ""))
        return see("training", started=run_id, state=str(started.get("state", "")))

    @pages.post("/inference", response_class=HTMLResponse)
    async def quote_page(request: Request) -> Response:
        """Signed quotes for the model and estimates typed, shown under the form."""
        form = parse_form(await request.body())
        try:
            quotes = await api.post("/inference/quote", quote_body(form))
        except AgoraError as err:
            return await _feature_view(api, inference, render, request, form=form, error=err)
        return await _feature_view(api, inference, render, request, form=form, quotes=quotes.get("quotes", []))

    return pages


async def _feature_view(
    api: NodeApi,
    feature: Feature,
    render: Callable[..., HTMLResponse],
    request: Request,
    *,
    form: dict[str, str] | None = None,
    error: AgoraError | None = None,
    **extra: Any,
) -> HTMLResponse:
    doc, err = await api.read(feature.probe)
    if err is not None and err.http_status == 404:
        return render(request, "unavailable.html", title=feature.title, feature=feature)
    ctx = await feature.read(api, doc)
    more_errors = ctx.pop("more_errors", [])
    fields = ctx.get("fields", ())
    values = {f.name: f.default for f in fields}
    if form is not None:
        values = {f.name: form.get(f.name, "") for f in fields}
    by_field, general = field_errors(error, fields) if error is not None else ({}, [])
    return render(
        request,
        feature.template,
        title=feature.title,
        doc=doc,
        values=values,
        field_errors=by_field,
        general=general,
        error=error,
        query=dict(request.query_params),
        **{**ctx, **extra},
        errors=[e for e in (err, *more_errors) if e],
    )


def _feature_page(
    api: NodeApi, feature: Feature, render: Callable[..., HTMLResponse]
) -> Callable[[Request], Awaitable[HTMLResponse]]:
    async def page(request: Request) -> HTMLResponse:
        return await _feature_view(api, feature, render, request)

    return page


__all__ = ["FEATURES", "NAV", "PREFIX", "Feature", "router"]
