"""The dashboard's way to the node: its own API, called in process through the API app itself.

Every call goes through the same ASGI app a browser or the CLI reaches (the local-only guard, the error
mapping, validation), so the dashboard can show nothing the API would not answer and needs no internals.
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp

from agora.errors import AgoraError

# what the guard sees of the dashboard's own calls: a loopback caller addressed to a loopback name
_CLIENT = ("127.0.0.1", 0)
_BASE = "http://localhost"


class NodeApi:
    """Async calls to the node's API (`get`, `post`, `delete`); an error answer raises its `AgoraError`."""

    def __init__(self, app: ASGIApp, token: str | None = None) -> None:
        self._app = app
        self._headers = {"authorization": f"Bearer {token}"} if token else {}

    async def call(self, method: str, path: str, *, json: Any = None, params: dict[str, Any] | None = None) -> Any:
        transport = httpx.ASGITransport(app=self._app, client=_CLIENT)
        async with httpx.AsyncClient(transport=transport, base_url=_BASE, headers=self._headers) as http:
            clean = {k: v for k, v in (params or {}).items() if v is not None and v != ""}
            resp = await http.request(method, path, json=json, params=clean)
        if resp.status_code >= 400:
            try:
                doc = resp.json()
                if path == "/health" and "error" not in doc:  # 503: a degraded node is a reading
                    return doc
                err = doc["error"]
            except (ValueError, KeyError, TypeError):
                if resp.status_code == 404:  # a route this node does not serve (a feature it lacks)
                    raise AgoraError("not_found", f"this node serves no {path}") from None
                raise AgoraError("internal", f"HTTP {resp.status_code}: {resp.text[:200]}") from None
            raise AgoraError.from_dict(err)
        if resp.headers.get("content-type", "").startswith("application/json"):
            return resp.json()
        return resp.text

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params=params)

    async def post(self, path: str, body: Any) -> Any:
        return await self.call("POST", path, json=body)

    async def delete(self, path: str) -> Any:
        return await self.call("DELETE", path)

    async def read(self, path: str, **params: Any) -> tuple[Any, AgoraError | None]:
        """A reading for a page section: (the answer, None), or (None, the error) to show in its place."""
        try:
            return await self.get(path, **params), None
        except AgoraError as err:
            return None, err


__all__ = ["NodeApi"]
