"""Can this node reach its hub, and if not, what should a person fix?

`reachability_check` runs when a node starts and in `agora node doctor`-style commands. It walks
the layers in order (TCP, NATS greeting, TLS, authorization) so the hint names the first thing
that is wrong instead of a generic "connection failed". `explain_connect_error` maps a failure
seen by the NATS client to the same codes and hints for `NatsTransport.start`.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
from urllib.parse import urlsplit

import nats.aio.client

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.transport.interfaces import log
from agora.transport.tls import TlsConfig

HINT_NOT_STARTED = "No hub listens there: start it (`agora hub up`) or fix the port in the hub URL."
HINT_NO_ANSWER = "The host does not answer: check the host name, the network path and firewalls."
HINT_NOT_NATS = "That port belongs to another service, not a hub: check the port in the hub URL."
HINT_TLS_REQUIRED = (
    "The hub requires TLS: give the node the CA that signed the hub's certificate "
    "(--tls-ca FILE of agora node up; tls.ca_file in Python)."
)
HINT_TLS_MISMATCH = (
    "TLS failed: the node must trust the CA that signed the hub's certificate (--tls-ca FILE), for the URL's host."
)
HINT_TLS_NOT_OFFERED = "The node is set up for TLS but the hub does not offer it: enable TLS on the hub."
HINT_AUTH = "The hub refused this node's DID: ask the hub operator to add it to the allowlist."
HINT_AUTH_NO_KEY = "The hub has an allowlist: start the node with its keypair and get its DID allowlisted."
HINT_BAD_URL = "A hub URL looks like nats://host:4222 (or tls://host:4222)."


def split_url(url: str) -> tuple[str, int]:
    try:
        parts = urlsplit(url if "://" in url else "nats://" + url)
        host, port = parts.hostname, parts.port or 4222
    except ValueError:
        host, port = None, 0
    if not host or parts.scheme not in ("nats", "tls"):
        raise AgoraError("config_invalid", f"bad hub URL {url!r}", hint=HINT_BAD_URL)
    return host, port


def _is_auth(text: str) -> bool:
    low = text.lower()
    return "authorization violation" in low or "authentication" in low or "authorization" in low


def explain_connect_error(exc: BaseException | None, url: str) -> tuple[str, str, str]:
    """(code, detail, hint) for what a NATS client saw while connecting to `url`."""
    text = str(exc) if exc is not None else "no attempt finished"
    if isinstance(exc, ConnectionRefusedError):
        return "hub_unreachable", f"{url}: connection refused", HINT_NOT_STARTED
    if isinstance(exc, ssl.SSLError | ssl.CertificateError):
        return "hub_unreachable", f"{url}: TLS handshake failed: {text}", HINT_TLS_MISMATCH
    if exc is not None and _is_auth(text):
        return "hub_auth_failed", f"{url}: {text}", HINT_AUTH
    if isinstance(exc, socket.gaierror):
        return "hub_unreachable", f"{url}: host name not found: {text}", HINT_NO_ANSWER
    if isinstance(exc, TimeoutError):
        return "hub_unreachable", f"{url}: no answer in time", HINT_NO_ANSWER
    return "hub_unreachable", f"{url}: {type(exc).__name__ if exc else 'error'}: {text}", HINT_NO_ANSWER


async def close_client(nc: nats.aio.client.Client, limit_s: float = 1.0) -> None:
    """Close a nats-py client without ever hanging or raising.

    nats-py 2.16 can wait forever in `close()` after a failed TLS handshake (the SSL transport
    never reports closed); the socket is already closed by then, so giving up after `limit_s`
    leaks nothing that matters.
    """
    if nc.is_closed:
        return
    try:
        await asyncio.wait_for(nc.close(), limit_s)
    except Exception as exc:  # includes TimeoutError; closing must never mask the real error
        log.debug("closing nats client: %r", exc)


async def _greeting(host: str, port: int, limit_s: float) -> dict[str, object]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), limit_s)
    try:
        line = await asyncio.wait_for(reader.readline(), limit_s)
    except TimeoutError:
        raise ValueError("connected, but no NATS greeting arrived") from None
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass
    if not line.startswith(b"INFO "):
        raise ValueError("not a NATS greeting")
    info = json.loads(line[5:])
    if not isinstance(info, dict):
        raise ValueError("not a NATS greeting")
    return info


async def reachability_check(
    url: str,
    timeout: float = 2.0,
    *,
    keypair: Keypair | None = None,
    tls: TlsConfig | None = None,
) -> tuple[bool, str, str]:
    """(ok, detail, hint): hint is empty when ok, else one sentence saying what to fix."""
    try:
        host, port = split_url(url)
    except AgoraError as exc:
        return False, exc.message, exc.hint
    try:
        info = await _greeting(host, port, timeout)
    except ConnectionRefusedError:
        return False, f"nothing listens on {host}:{port}", HINT_NOT_STARTED
    except TimeoutError:
        return False, f"{host}:{port} did not answer within {timeout} s", HINT_NO_ANSWER
    except (ValueError, UnicodeDecodeError):
        return False, f"{host}:{port} is not a NATS server", HINT_NOT_NATS
    except OSError as exc:
        return False, f"{host}:{port}: {exc}", HINT_NO_ANSWER
    if info.get("tls_required") and tls is None:
        return False, f"{url} requires TLS", HINT_TLS_REQUIRED
    if tls is not None and not info.get("tls_required") and not info.get("tls_available"):
        return False, f"{url} does not offer TLS", HINT_TLS_NOT_OFFERED
    if info.get("auth_required") and keypair is None:
        return False, f"{url} requires an allowlisted DID", HINT_AUTH_NO_KEY
    return await _try_connect(url, timeout, keypair, tls, str(info.get("version", "?")))


async def _try_connect(
    url: str, limit_s: float, keypair: Keypair | None, tls: TlsConfig | None, version: str
) -> tuple[bool, str, str]:
    nc = nats.aio.client.Client()
    seen: list[BaseException] = []

    async def on_error(exc: BaseException) -> None:
        seen.append(exc)

    options: dict[str, object] = {
        "servers": [url],
        "allow_reconnect": False,
        "max_reconnect_attempts": 0,
        "connect_timeout": max(1, int(limit_s + 0.999)),
        "error_cb": on_error,
    }
    if keypair is not None:
        options["nkeys_seed_str"] = keypair.nkey_seed()
    try:
        if tls is not None:
            options["tls"] = tls.client_context()
            if tls.server_name:
                options["tls_hostname"] = tls.server_name
        await asyncio.wait_for(nc.connect(**options), limit_s)  # type: ignore[arg-type]
        rtt = await nc.rtt()
    except AgoraError as exc:
        return False, exc.message, exc.hint
    except Exception as exc:  # includes TimeoutError
        cause = seen[-1] if seen else exc
        code, detail, hint = explain_connect_error(cause, url)
        if code == "hub_auth_failed" and keypair is not None:
            detail = f"{detail} (DID {keypair.did})"
        return False, detail, hint
    finally:
        await close_client(nc)
    return True, f"connected to {url} (nats-server {version}, rtt {rtt * 1000:.2f} ms)", ""


__all__ = ["explain_connect_error", "reachability_check", "split_url"]
