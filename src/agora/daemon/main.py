"""Argument parsing and the run loop of the node process (see the package docstring)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import sys
from collections.abc import Mapping
from typing import NoReturn

from agora.api import ApiServer
from agora.errors import AgoraError
from agora.node import Node, NodeConfig, settings
from agora.telemetry import configure_logging


class _Parser(argparse.ArgumentParser):
    """A usage error is one line and a pointer to --help, not the 40-line usage of every setting (which
    `agora node up --typo` used to print)."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\nhint: `{self.prog} --help` lists every setting and its flag\n")


def build_parser() -> argparse.ArgumentParser:
    """Every flag comes from the settings schema (`NodeConfig`); `--help` shows each one's AGORA_* name."""
    p = _Parser(
        prog="python -m agora.daemon",
        description="Run an agora node. Every flag can also be set by its AGORA_* environment variable "
        "(flags win); secrets (AGORA_PASSPHRASE, AGORA_S3_ACCESS_KEY, AGORA_S3_SECRET_KEY) by the environment only.",
    )
    settings.add_arguments(p, NodeConfig)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_config(ns: argparse.Namespace, environ: Mapping[str, str] | None = None) -> NodeConfig:
    """The config from the command line over `environ` (the process environment at the entry point only)."""
    env = settings.from_environment(NodeConfig, environ or {})
    return settings.build(NodeConfig, {**env, **settings.from_namespace(NodeConfig, ns)})


async def run(config: NodeConfig) -> int:
    node = Node(config)
    api = ApiServer(
        node,
        host=config.api_host,
        port=config.api_port,
        uds=config.api_socket,
        require_token=config.require_api_token,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    started = False
    try:
        api.bind()  # before joining: a taken port fails now, and peers never see this node join and leave
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
        config = build_config(ns, os.environ)
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


__all__ = ["build_config", "build_parser", "main", "parse_args", "run"]
