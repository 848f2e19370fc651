"""The local-only guard: the API answers callers on this machine and nobody else.

It checks the peer address of every connection, not a header a client could forge. A unix-socket
caller has no IP address and is local by construction. Anything else gets 403 with
`forbidden_remote_caller`, even when the server was bound to a public address by mistake.

It also checks the Host header: a web page in the user's browser can make the browser call
127.0.0.1 under a name the attacker controls (DNS rebinding), so only requests addressed to a loopback
name or address are served (`localhost`, `127.x.x.x`, `[::1]`, any port; `agora`, the name the Python client
uses, only over the unix socket), and a request whose `Origin` is a web site or `null` (a sandboxed frame, a
`data:` page) is refused.

With a token (`require_api_token`), a TCP caller must also send `Authorization: Bearer TOKEN`, the token the
node wrote in `api.token` (0600) in its home: other users of a shared machine reach 127.0.0.1 too, but cannot
read the file. A unix-socket caller needs none: the socket itself is 0600. Wrong or missing: 401
`api_token_invalid`.
"""

from __future__ import annotations

import hmac
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


def _host_is_local(host_header: str, *, unix: bool = False) -> bool:
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    if host == "localhost" or (unix and host == "agora"):  # "agora": the Python client's name on the socket
        return True
    return is_local(host) if host else False


def _origin_is_local(origin: str) -> bool:
    if origin == "":  # not sent: not a browser's cross-origin request
        return True
    scheme, sep, rest = origin.partition("://")
    if not sep or scheme not in ("http", "https"):  # "null" (sandboxed frames, data: pages), file:, ...
        return False
    return _host_is_local(rest.split("/", 1)[0])


def _token_matches(headers: dict[bytes, bytes], token: str) -> bool:
    scheme, _, value = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


class LocalOnlyMiddleware:
    def __init__(self, app: ASGIApp, on_reject: object = None, token: str | None = None) -> None:
        self.app = app
        self.on_reject = on_reject
        self.token = token  # None: no token asked (the default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        host = client[0] if client else None
        headers = dict(scope.get("headers") or [])
        host_header = headers.get(b"host", b"").decode("latin-1")
        origin = headers.get(b"origin", b"").decode("latin-1")
        unix = host is None
        if is_local(host) and _host_is_local(host_header, unix=unix) and _origin_is_local(origin):
            if unix or self.token is None or _token_matches(headers, self.token):
                await self.app(scope, receive, send)
                return
            await self._refuse(
                scope,
                send,
                AgoraError("api_token_invalid", "this node's TCP API asks for its token (Authorization: Bearer)"),
            )
            return
        if is_local(host):
            host = f"{host or 'unix socket'} (Host: {host_header or '-'}, Origin: {origin or '-'})"
        await self._refuse(scope, send, AgoraError("forbidden_remote_caller", f"caller {host} is not on this machine"))

    async def _refuse(self, scope: Scope, send: Send, err: AgoraError) -> None:
        if callable(self.on_reject):
            self.on_reject(err.code)
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        body = json.dumps({"error": err.to_dict()}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": err.http_status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


__all__ = ["LocalOnlyMiddleware", "is_local"]
