"""Routes for jobs this node runs as requester: submit, list, inspect, why, follow logs, cancel, outputs."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from agora.jobs import announced_facts, node_facts, require_constraints, validate
from agora.node import Node
from agora.node.compute import compute_of
from agora.telemetry import tracing


class JobBody(BaseModel):
    spec: dict[str, Any] | str = Field(description="The job spec: a mapping, or YAML/JSON text")
    node: str | None = Field(None, description="DID of the node to run on; this node when absent")
    base_dirs: list[str] = Field(
        default_factory=list, description="Where relative file paths in the spec (modules, local inputs) are looked up"
    )


def _target_facts(node: Node, target: str | None) -> tuple[dict[str, Any], bool]:
    """What this node knows of the target's capability, and whether that is all of it (this node: yes;
    a peer: only what its announcement carries)."""
    if target is None or target == node.did:
        capacity = compute_of(node).capacity
        return (node_facts(capacity.total), True) if capacity is not None else ({}, False)
    peer = node.peer_table.get(target)
    return (announced_facts(peer.capabilities), False) if peer is not None else ({}, False)


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.post("/jobs", tags=["jobs"], status_code=201)
    async def submit(body: JobBody) -> dict[str, Any]:
        """Validate and start a job; it runs in the background. Returns its id and state, and `warnings`:
        the fields the spec sets that have no effect yet. A target known to fail one of the job's
        constraints (this node, or what a peer announced) refuses it before anything is sent."""
        runner = compute_of(node).runner
        spec, warnings = validate(body.spec, market=body.node is None and runner.placer is not None)
        if body.node is not None or runner.placer is None:  # the market checks constraints on every candidate
            facts, complete = _target_facts(node, body.node)
            require_constraints(spec.constraints, facts, node=body.node or node.did, complete=complete)
        with tracing.span("job.submit", node=node.did):  # opt-in: the job's RPCs (bids, start, ...) are its children
            summary = await compute_of(node).runner.submit(body.spec, node=body.node, base_dirs=body.base_dirs)
        return {**summary, "warnings": warnings}

    @app.get("/jobs", tags=["jobs"])
    async def jobs(
        state: str | None = Query(None, description="submitted, running, completed, failed or cancelled"),
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """Jobs submitted to this node, newest first."""
        return {"jobs": await compute_of(node).runner.list_jobs(state=state, limit=limit)}

    @app.get("/jobs/{job_id}", tags=["jobs"])
    async def job(
        job_id: str, wait: float = Query(0.0, ge=0, le=25, description="wait up to this long for the end")
    ) -> dict[str, Any]:
        """The job record: state, history, tasks with their allocations, receipts, errors, and its events."""
        runner = compute_of(node).runner
        doc = await (runner.wait(job_id, wait) if wait > 0 else runner.get(job_id))
        events = await node.store.events(subject=job_id, limit=1000)
        return {**doc, "events": [e.to_dict() for e in events]}

    @app.get("/jobs/{job_id}/why", tags=["jobs"])
    async def why(job_id: str) -> dict[str, Any]:
        """Why each unit is where it is: every market round (candidates, verdicts, reasons, score breakdowns,
        bids, declines, failures, counts per reason, what would fit), the queue position, and a summary."""
        return await compute_of(node).runner.why(job_id)

    @app.get("/jobs/{job_id}/logs", tags=["jobs"])
    async def logs(
        job_id: str,
        after: int = Query(0, ge=0, description="return lines with seq > after"),
        limit: int = Query(1000, ge=1, le=5000),
        wait: float = Query(0.0, ge=0, le=25, description="wait up to this long for a new line"),
    ) -> dict[str, Any]:
        """Log lines of every task (and the job's state changes) after a cursor."""
        return await compute_of(node).runner.logs(job_id, after=after, limit=limit, wait_s=wait)

    @app.post("/jobs/{job_id}/cancel", tags=["jobs"])
    async def cancel(job_id: str) -> dict[str, Any]:
        """Cancel a job: running allocations are cancelled on their provider."""
        return await compute_of(node).runner.cancel(job_id)

    @app.get("/jobs/{job_id}/outputs", tags=["jobs"])
    async def outputs(job_id: str) -> dict[str, Any]:
        """Every verified output of the job, with where it lies on this machine."""
        return {"outputs": await compute_of(node).runner.outputs(job_id)}

    return app


__all__ = ["JobBody", "router"]
