"""`agora init`, `agora hub up`, `agora node up`, `agora status`, `agora peers`, `agora ping`."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from agora.cli.output import emit_json, errors, run_json_or_text, short, table
from agora.client import AgoraClient, resolve_node
from agora.errors import AgoraError

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]
HomeOpt = Annotated[Path | None, typer.Option("--home", help="node home (default: $AGORA_HOME or ~/.agora)")]


def _home(home: Path | None) -> Path:
    return home or Path(os.environ.get("AGORA_HOME", Path.home() / ".agora"))


def init(
    home: HomeOpt = None,
    passphrase: Annotated[
        bool, typer.Option("--passphrase", help="encrypt the key with a passphrase (asked, or $AGORA_PASSPHRASE)")
    ] = False,
    force: Annotated[bool, typer.Option("--force", help="replace an existing identity (the old key is lost)")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Create this machine's identity (an Ed25519 key in a 0600 keystore)."""
    from agora.identity import create_keystore, keystore_did  # only here: `agora --help` stays fast

    path = _home(home) / "identity.json"
    with errors(as_json):
        if path.exists() and not force:
            did = keystore_did(path)
            run_json_or_text(
                as_json,
                {"did": did, "keystore": str(path), "created": False},
                lambda d: typer.echo(f"identity exists: {d['did']}\nkeystore: {d['keystore']}"),
            )
            return
        secret = None
        if passphrase:
            secret = os.environ.get("AGORA_PASSPHRASE") or typer.prompt(
                "passphrase", hide_input=True, confirmation_prompt=True
            )
        kp = create_keystore(path, secret, force=force)
        run_json_or_text(
            as_json,
            {"did": kp.did, "peer_id": kp.peer_id, "keystore": str(path), "created": True},
            lambda d: typer.echo(f"created identity {d['did']}\nkeystore: {d['keystore']} (mode 0600)"),
        )


S3EndpointOpt = Annotated[
    str | None, typer.Option(help="S3-compatible server for jobs' s3 outputs/inputs (default: AWS)")
]
S3BucketOpt = Annotated[
    str | None,
    typer.Option(help="S3 bucket jobs may use (turns S3 on; keys from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"),
]
S3RegionOpt = Annotated[str | None, typer.Option(help="S3 region (default us-east-1)")]


def _s3_args(endpoint: str | None, bucket: str | None, region: str | None) -> list[str]:
    args: list[str] = []
    for flag, value in (("--s3-endpoint", endpoint), ("--s3-bucket", bucket), ("--s3-region", region)):
        if value:
            args += [flag, value]
    return args


# `agora hub up` and `agora node up` hand every flag they do not know to the node process: all the daemon's
# flags (generated from the settings schema, `python -m agora.daemon --help`) work here without a CLI option each.
DAEMON_PASSTHROUGH: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True}


def _given(*pairs: tuple[str, object]) -> list[str]:
    """The flags whose option was given; the others stay unset, for the daemon's environment and defaults."""
    return [part for flag, value in pairs if value is not None for part in (flag, str(value))]


def _exec_daemon(args: list[str]) -> None:
    """Replace this process with the node process, so signals and exit codes go straight to it."""
    argv = [sys.executable, "-m", "agora.daemon", *args]
    sys.stdout.flush()
    os.execv(sys.executable, argv)


def hub_up(
    ctx: typer.Context,
    port: Annotated[int | None, typer.Option(help="NATS port nodes dial (default 4222; 0 = pick a free one)")] = None,
    host: Annotated[
        str | None, typer.Option(help="address to listen on (default 127.0.0.1); beyond loopback needs TLS")
    ] = None,
    api_port: Annotated[int | None, typer.Option(help="local API port (default 8765; 0 = pick a free one)")] = None,
    home: HomeOpt = None,
    allow: Annotated[list[str] | None, typer.Option(help="DID allowed to join (repeat); default: open hub")] = None,
    route: Annotated[list[str] | None, typer.Option(help="cluster route to another hub (repeat)")] = None,
    cluster_port: Annotated[int | None, typer.Option(help="port for routes from other hubs")] = None,
    tls_cert: Annotated[str | None, typer.Option()] = None,
    tls_key: Annotated[str | None, typer.Option()] = None,
    tls_ca: Annotated[str | None, typer.Option()] = None,
    allow_private_inputs: Annotated[
        bool, typer.Option(help="let jobs' HTTP inputs come from private or local addresses (off: SSRF guard)")
    ] = False,
    allow_task_network: Annotated[
        bool, typer.Option(help="give process tasks that ask for a network the host's (they can reach local services)")
    ] = False,
    s3_endpoint: S3EndpointOpt = None,
    s3_bucket: S3BucketOpt = None,
    s3_region: S3RegionOpt = None,
) -> None:
    """Run a hub: a node that also runs the NATS server other nodes dial out to.

    Any other node setting: pass its daemon flag (`python -m agora.daemon --help` lists them) or set its
    AGORA_* environment variable."""
    # an option left out is not passed, so its AGORA_* variable (AGORA_HUB_PORT, AGORA_API_PORT...) still applies
    args = ["--hub", *_given(("--hub-host", host), ("--hub-port", port), ("--api-port", api_port))]
    args += _s3_args(s3_endpoint, s3_bucket, s3_region)
    if allow_private_inputs:
        args.append("--allow-private-inputs")
    if allow_task_network:
        args.append("--allow-task-network")
    if home:
        args += ["--home", str(home)]
    for did in allow or []:
        args += ["--allow", did]
    for r in route or []:
        args += ["--route", r]
    if cluster_port is not None:
        args += ["--cluster-port", str(cluster_port)]
    for flag, value in (("--tls-cert", tls_cert), ("--tls-key", tls_key), ("--tls-ca", tls_ca)):
        if value:
            args += [flag, value]
    _exec_daemon([*args, *ctx.args])


def node_up(
    ctx: typer.Context,
    hub: Annotated[
        str | None, typer.Option("--hub", help="hub URL(s), comma-separated: nats://HOST:PORT (or AGORA_HUBS)")
    ] = None,
    api_port: Annotated[int | None, typer.Option(help="local API port (default 8765; 0 = pick a free one)")] = None,
    api_socket: Annotated[Path | None, typer.Option(help="serve the API on a unix socket instead")] = None,
    tls_ca: Annotated[str | None, typer.Option(help="CA certificate to trust for tls:// hubs")] = None,
    allow_private_inputs: Annotated[
        bool, typer.Option(help="let jobs' HTTP inputs come from private or local addresses (off: SSRF guard)")
    ] = False,
    allow_task_network: Annotated[
        bool, typer.Option(help="give process tasks that ask for a network the host's (they can reach local services)")
    ] = False,
    home: HomeOpt = None,
    s3_endpoint: S3EndpointOpt = None,
    s3_bucket: S3BucketOpt = None,
    s3_region: S3RegionOpt = None,
) -> None:
    """Run a node that joins the network through one or more hubs.

    Any other node setting: pass its daemon flag (`python -m agora.daemon --help` lists them, e.g.
    --compute-max-allocations 8 or --require-api-token) or set its AGORA_* environment variable."""
    args = _given(("--hub-url", hub), ("--api-port", api_port))  # left out: AGORA_HUBS, AGORA_API_PORT apply
    args += _s3_args(s3_endpoint, s3_bucket, s3_region)
    if allow_private_inputs:
        args.append("--allow-private-inputs")
    if allow_task_network:
        args.append("--allow-task-network")
    if tls_ca:
        args += ["--tls-ca", tls_ca]
    if api_socket:
        args += ["--api-socket", str(api_socket)]
    if home:
        args += ["--home", str(home)]
    _exec_daemon([*args, *ctx.args])


def status(api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Show the local node: identity, hubs, link state, peers, uptime."""
    with errors(as_json), AgoraClient(api) as c:
        info: dict[str, Any] = {**c.node(), "health": c.health()}

        def text(d: dict[str, Any]) -> None:
            typer.echo(f"did:        {d['did']}")
            typer.echo(f"version:    {d['version']}")
            why = "; ".join(d["health"].get("reasons") or []) or f"transport {d['transport']}"
            typer.echo(f"health:     {d['health']['status']} ({why})")
            typer.echo(f"hubs:       {', '.join(d['hubs'])}")
            typer.echo(f"is hub:     {d['is_hub']}")
            typer.echo(f"api:        {d['api']}")
            typer.echo(f"peers:      {d['peers_alive']} alive")
            typer.echo(f"uptime:     {d['uptime_s']:.1f}s (ready in {d['ready_s'] or 0:.3f}s)")

        run_json_or_text(as_json, info, text)


def peers(
    api: ApiOpt = None,
    status_filter: Annotated[str | None, typer.Option("--status", help="alive, lost or left")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List the peers the local node sees."""
    with errors(as_json), AgoraClient(api) as c:
        rows = c.peers(status=status_filter)
        if as_json:
            emit_json(rows)
            return
        table(
            [
                {"did": p["did"], "status": p["status"], "age": f"{p['age_s']:.1f}s", "version": p["version"]}
                for p in rows
            ],
            ["did", "status", "age", "version"],
        )


def ping(
    did: Annotated[str, typer.Argument(help="the node to ping: a DID, or a devnet name like node-2")],
    count: Annotated[int, typer.Option("--count", "-c", min=1, max=100)] = 3,
    timeout: Annotated[float, typer.Option(min=0.1, max=60)] = 5.0,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Send signed ping invocations to a node through the hub and print the round trips."""
    with errors(as_json), AgoraClient(api) as c:
        did = resolve_node(did)
        rtts = c.ping(did, count=count, timeout=timeout)
        if as_json:
            emit_json({"did": did, "rtt_ms": rtts})
            return
        for i, rtt in enumerate(rtts):
            typer.echo(f"reply from {short(did)}: seq={i} time={rtt:.2f} ms")
        if not rtts:
            raise AgoraError("timeout", "no replies")


__all__ = ["hub_up", "init", "node_up", "peers", "ping", "status"]
