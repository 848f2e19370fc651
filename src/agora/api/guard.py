"""The local-only guard: the API answers callers on this machine and nobody else.

It checks the peer address of every connection, not a header a client could forge. A unix-socket
caller has no IP address and is local by construction. Anything else gets 403 with
`forbidden_remote_caller`, even when the server was bound to a public address by mistake.
"""

from __future__ import annotations

import ipaddress
import json

from starlette.types import ASGIApp, Receive, Scope, Send

from agora.errors import AgoraError


def is_local(host: str | None) -> bool:
    if not host:  # unix socket
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class LocalOnlyMiddleware:
    def __init__(self, app: ASGIApp, on_reject: object = None) -> None:
        self.app = app
        self.on_reject = on_reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else None
        if is_local(host):
            await self.app(scope, receive, send)
            return
        if callable(self.on_reject):
            self.on_reject("forbidden_remote_caller")
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        err = AgoraError("forbidden_remote_caller", f"caller {host} is not on this machine")
        body = json.dumps({"error": err.to_dict()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 403,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["LocalOnlyMiddleware", "is_local"]
