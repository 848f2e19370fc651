"""The local-only guard: the API answers callers on this machine and nobody else.

It checks the peer address of every connection, not a header a client could forge. A unix-socket
caller has no IP address and is local by construction. Anything else gets 403 with
`forbidden_remote_caller`, even when the server was bound to a public address by mistake.

It also checks the Host header: a web page in the user's browser can make the browser call
127.0.0.1 under a name the attacker controls (DNS rebinding), so only requests addressed to a loopback
name or address are served (`localhost`, `127.x.x.x`, `[::1]`, any port), and a request whose `Origin`
is a web site is refused.
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


def _host_is_local(host_header: str) -> bool:
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host in ("localhost", "agora"):  # "agora": the name the Python client uses over a unix socket
        return True
    return is_local(host) if host else False


def _origin_is_local(origin: str) -> bool:
    if origin in ("", "null"):
        return True
    rest = origin.split("://", 1)[-1]
    return _host_is_local(rest.split("/", 1)[0])


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
        headers = dict(scope.get("headers") or [])
        host_header = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1")
        if is_local(host) and _host_is_local(host_header) and _origin_is_local(origin):
            await self.app(scope, receive, send)
            return
        if is_local(host):
            host = f"{host or 'unix socket'} (Host: {host_header or '-'}, Origin: {origin or '-'})"
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
