"""Routes about the node itself and its network view: /health, /node, /peers, /ping, /events, /metrics."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from agora.node import Node


class PingBody(BaseModel):
    did: str = Field(description="The DID of the node to ping")
    count: int = Field(1, ge=1, le=100)
    timeout: float = Field(5.0, gt=0, le=60)


def devnet_names(home: Path) -> dict[str, str]:
    """Peer names by DID where this node is a devnet member (its home is DIR/NAME beside DIR/devnet.json, which
    `agora devnet up` writes), so a page can say `node-2` instead of a DID; {} elsewhere, or when the file is not
    the user's own or others may write it (a planted file must not put names on DIDs)."""
    try:
        with open(home.parent / "devnet.json", "rb") as fh:
            st = os.fstat(fh.fileno())
            if st.st_uid != os.geteuid() or st.st_mode & stat.S_IWOTH or st.st_size > 1 << 20:
                return {}
            doc = json.loads(fh.read())
    except (OSError, ValueError):
        return {}
    members = [doc.get("hub"), *(doc.get("nodes") or [])] if isinstance(doc, dict) else []
    return {
        m["did"]: m["name"]
        for m in members
        if isinstance(m, dict) and isinstance(m.get("did"), str) and isinstance(m.get("name"), str)
    }


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.get("/health", tags=["node"])
    async def health(response: Response) -> dict[str, Any]:
        """Liveness, the link to the hub and the admission limits: 200 when ok, 503 when degraded (`reasons`
        says why: the hub link is down, or a full share of the replay cache refused callers in the last minute)."""
        body = node.health()
        if body["status"] != "ok":
            response.status_code = 503
        return body

    @app.get("/node", tags=["node"])
    async def node_info() -> dict[str, Any]:
        """This node's identity, version, hubs, capabilities, commands and uptime."""
        return node.info()

    @app.get("/peers", tags=["peers"])
    async def peers(status: str | None = Query(None, description="alive, lost or left")) -> dict[str, Any]:
        """The peer table: every node this one has heard from, with last-seen and status (and `name`, its devnet
        name, when this node is a member of a devnet)."""
        rows = node.peer_table.snapshot()
        names = devnet_names(Path(node.config.home))
        for row in rows:
            if row["did"] in names:
                row["name"] = names[row["did"]]
        if status is not None:
            rows = [p for p in rows if p["status"] == status]
        return {"peers": rows}

    @app.post("/ping", tags=["peers"])
    async def ping(body: PingBody) -> dict[str, Any]:
        """Send signed /agora/node/ping invocations to a node through the hub; returns round trips in ms."""
        rtts = await node.ping(body.did, count=body.count, timeout=body.timeout)
        return {"did": body.did, "rtt_ms": rtts}

    @app.get("/events", tags=["events"])
    async def events(
        after: int = Query(0, ge=0, description="return events with seq > after"),
        kind: str | None = None,
        subject: str | None = None,
        limit: int = Query(100, ge=1, le=1000),
    ) -> dict[str, Any]:
        """The node's append-only event log, oldest first."""
        rows = await node.store.events(after_seq=after, kind=kind, subject=subject, limit=limit)
        return {"events": [e.to_dict() for e in rows]}

    @app.get("/metrics", tags=["node"], response_class=Response)
    async def metrics() -> Response:
        """Prometheus metrics."""
        body, content_type = node.metrics.render()
        return Response(body, media_type=content_type)

    return app


__all__ = ["PingBody", "router"]
