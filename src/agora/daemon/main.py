"""Argument parsing and the run loop of the node process (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from agora.api import ApiServer
from agora.errors import AgoraError
from agora.node import HubSettings, Node, NodeConfig, default_home
from agora.telemetry import configure_logging


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m agora.daemon", description="Run an agora node.")
    p.add_argument("--home", type=Path, default=None, help="node home (default $AGORA_HOME or ~/.agora)")
    p.add_argument("--hub-url", action="append", default=[], help="hub URL to dial (repeat or comma-separate)")
    p.add_argument("--hub", action="store_true", help="also run a hub (embedded nats-server)")
    p.add_argument("--hub-host", default="127.0.0.1")
    p.add_argument("--hub-port", type=int, default=4222)
    p.add_argument("--cluster-port", type=int, default=None)
    p.add_argument("--route", action="append", default=[], help="cluster route to another hub")
    p.add_argument("--allow", action="append", default=[], help="DID allowed on this hub (default: open)")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tls-ca")
    p.add_argument("--api-host", default="127.0.0.1")
    p.add_argument("--api-port", type=int, default=8765)
    p.add_argument("--api-socket", type=Path, default=None)
    p.add_argument("--announce-interval", type=float, default=5.0)
    p.add_argument("--lost-after", type=float, default=None)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--pin-peer", action="append", default=[], help="DID the peer table always keeps (repeat)")
    p.add_argument(
        "--allow-private-inputs",
        action="store_true",
        help="fetch HTTP(S) inputs from loopback, private and link-local addresses too (off: SSRF protection)",
    )
    p.add_argument(
        "--allow-task-network",
        action="store_true",
        help="give process tasks that ask for a network the host's network (they can reach local services)",
    )
    s3 = p.add_argument_group(
        "S3 storage", "for jobs' s3 outputs and inputs; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
    )
    s3.add_argument("--s3-endpoint", default=None, help="S3-compatible server URL (default: AWS itself)")
    s3.add_argument("--s3-bucket", default=None, help="the bucket jobs may use (setting it turns S3 on)")
    s3.add_argument("--s3-region", default="us-east-1")
    return p.parse_args(argv)


def build_config(ns: argparse.Namespace) -> NodeConfig:
    hubs = [u.strip() for arg in ns.hub_url for u in arg.split(",") if u.strip()]
    hub = None
    if ns.hub:
        hub = HubSettings(
            host=ns.hub_host,
            port=ns.hub_port,
            cluster_port=ns.cluster_port,
            routes=list(ns.route),
            allow=list(ns.allow),
            tls_cert=ns.tls_cert,
            tls_key=ns.tls_key,
            tls_ca=ns.tls_ca,
        )
    return NodeConfig(
        home=ns.home or default_home(),
        hubs=hubs,
        hub=hub,
        api_host=ns.api_host,
        api_port=ns.api_port,
        api_socket=ns.api_socket,
        announce_interval=ns.announce_interval,
        lost_after=ns.lost_after if ns.lost_after is not None else 3 * ns.announce_interval,
        expire_after=12 * ns.announce_interval,
        log_level=ns.log_level,
        pinned_peers=list(ns.pin_peer),
        tls_ca=ns.tls_ca,
        allow_private_inputs=ns.allow_private_inputs,
        allow_task_network=ns.allow_task_network,
        s3_endpoint=ns.s3_endpoint,
        s3_bucket=ns.s3_bucket,
        s3_region=ns.s3_region,
    )


async def run(config: NodeConfig) -> int:
    node = Node(config)
    api = ApiServer(node, host=config.api_host, port=config.api_port, uds=config.api_socket)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = False
    try:
        await node.start()
        started = True
        url = await api.start()
        node.write_run_file()
        ready = {
            "event": "ready",
            "did": node.did,
            "api": url,
            "hub_url": node.hub.url if node.hub else None,
            "hubs": list(node.hub_urls),
            "ready_s": round(node.ready_s or 0.0, 3),
        }
        print(json.dumps(ready), flush=True)
        await stop.wait()
        return 0
    finally:
        await api.stop()
        if started:  # only the process that ran the node owns its run file (a refused twin must not remove it)
            node.remove_run_file()
            await node.stop()


def main(argv: list[str] | None = None) -> int:
    ns = parse_args(argv)
    try:
        config = build_config(ns)
        config.validate()
        configure_logging(config.log_level)
        return asyncio.run(run(config))
    except AgoraError as err:
        if not sys.stdout.isatty():  # a launcher (the devnet) reads this line; a person reads stderr
            print(json.dumps({"event": "error", **err.to_dict()}), flush=True)
        print(f"error: {err.code}: {err.message}\nhint: {err.hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


__all__ = ["build_config", "main", "parse_args", "run"]
