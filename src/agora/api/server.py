"""Serve the API with uvicorn inside the node's event loop, on 127.0.0.1:PORT or a unix socket."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from agora.api.app import create_app
from agora.api.guard import is_local
from agora.errors import AgoraError
from agora.node import Node, loopback_address


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its own signal handlers: the node process owns SIGTERM/SIGINT and shuts down
    the node (leave announcement included) before the API."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    def __init__(
        self,
        node: Node,
        *,
        host: str = "127.0.0.1",
        port: int = 8765,
        uds: Path | None = None,
        require_token: bool = False,
    ) -> None:
        self.node = node
        # a fresh token per start, for the TCP API only (the unix socket is 0600 itself)
        self.token = secrets.token_urlsafe(32) if require_token and uds is None else None
        self.host = host
        self.port = port
        self.uds = uds
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None  # bound by `bind`, handed to uvicorn by `start`

    def bind(self) -> None:
        """Take the TCP port now, before the node joins the network: a port in use fails here, and peers never
        see a node that joins and leaves again. Idempotent; `start` binds if this was not called."""
        if self.uds is not None or self._sock is not None:
            return
        address = loopback_address(self.host)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        # IPPROTO_TCP explicitly: uvicorn sets TCP_NODELAY only on such sockets (else Nagle + delayed
        # ACK add ~40 ms to every API call)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, self.port))  # bind now so port 0 resolves before we announce the URL
        except OSError as exc:
            sock.close()
            raise AgoraError(
                "config_invalid",
                f"the API cannot listen on {self.host}:{self.port}: {exc.strerror}",
                hint="Another process (often another agora node) uses that port: pass --api-port with a "
                "free port, or --api-port 0 to pick one.",
            ) from None
        bound = sock.getsockname()[0]
        if not is_local(bound):  # what the kernel bound, not what the name promised
            sock.close()
            raise AgoraError("config_invalid", f"the API bound {bound}, which is not a loopback address")
        self.port = sock.getsockname()[1]
        self._sock = sock

    async def start(self) -> str:
        if self.token is not None:
            _write_private(self.node.config.api_token_file, self.token)
        app = create_app(self.node, api_token=self.token)
        if self.uds is not None:
            self.uds.parent.mkdir(parents=True, exist_ok=True)
            self.uds.unlink(missing_ok=True)
            sock = _bind_private_unix(self.uds)  # 0600 before it listens (uvicorn's own uds binding listens at 0666)
            config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
            url = f"unix://{self.uds}"
        else:
            self.bind()
            assert self._sock is not None
            sock, self._sock = self._sock, None
            config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
            url = f"http://[{self.host}]:{self.port}" if ":" in self.host else f"http://{self.host}:{self.port}"
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="api")
        for _ in range(3000):  # bounded: 30 s (a loaded machine is slow to start uvicorn)
            if self._server.started or self._task.done():
                break
            await asyncio.sleep(0.01)
        if self._task.done():
            self._task.result()
        if not self._server.started:
            await self.stop()
            raise AgoraError("unavailable", f"the API did not start listening on {url} in time")
        self.node.api_url = url
        return url

    async def stop(self) -> None:
        if self._sock is not None:  # bound, never served
            self._sock.close()
            self._sock = None
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        if self.uds is not None:
            self.uds.unlink(missing_ok=True)
        if self.token is not None:
            self.node.config.api_token_file.unlink(missing_ok=True)


def _bind_private_unix(path: Path) -> socket.socket:
    """A unix socket only the node's own user may connect to (a unix caller needs no token). Its mode is set
    between bind and listen, when a connect is still refused: no connection is ever accepted while the file
    has a wider mode, which a caller could otherwise keep open for good."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, 0o600)
    except OSError as exc:
        sock.close()
        raise AgoraError("config_invalid", f"the API cannot listen on {path}: {exc.strerror}") from None
    return sock


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read: created 0600 under a temporary name, then renamed over.

    The temporary file is always a new one (O_EXCL after removing whatever had that name): a file planted
    there beforehand, and held open by whoever planted it, never receives the text."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, text.encode())
    finally:
        os.close(fd)
    tmp.replace(path)


__all__ = ["ApiServer"]
