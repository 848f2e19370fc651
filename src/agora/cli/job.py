"""`agora job run|status|logs|cancel|outputs|convert`: jobs, through the local node's API.

`run` submits the file's text (relative paths in it are looked up from the current directory, then
from the file's own directory), shows progress until the job ends (state changes; `--follow` adds
every log line), then its outputs and the usage receipts, and exits 0 only when the job completed.
`convert` is local: it needs no node.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml

from agora.cli.output import emit_json, errors, short, table
from agora.client import AgoraClient
from agora.errors import AgoraError
from agora.jobs import convert

app = typer.Typer(help="Run jobs and follow them.", no_args_is_help=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]
TERMINAL = ("completed", "failed", "cancelled")


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _print_line(line: dict[str, Any]) -> None:
    task = line.get("task") or "job"
    if line.get("stream") == "agora":
        typer.echo(f"[{task}] » {line.get('line')}")
    else:
        err = line.get("stream") == "stderr"
        typer.echo(f"[{task}] {line.get('line')}", err=err)


def _follow(c: AgoraClient, job_id: str, *, all_lines: bool, deadline: float | None) -> None:
    after = 0
    for _ in range(1_000_000):  # bounded; each round waits up to 2 s for news
        if deadline is not None and time.monotonic() > deadline:
            raise AgoraError("timeout", f"job {job_id} did not end in time; it keeps running", retryable=True)
        page = c.job_logs(job_id, after=after, wait=2.0)
        if page.get("dropped"):
            typer.echo(f"[job] » {page['dropped']} log lines were dropped (read too slowly)")
        for line in page["lines"]:
            if all_lines or line.get("stream") == "agora":
                _print_line(line)
        after = int(page["next"])
        if page.get("done"):
            return


def _summary(doc: dict[str, Any]) -> None:
    typer.echo(f"job {doc['id']} ({doc['name']}) {doc['state']} on {short(doc['node'])}")
    if doc.get("error"):
        err = doc["error"]
        where = f" in task {err['task']}" if err.get("task") else ""
        typer.echo(f"error{where}: {err.get('code')}: {err.get('message')}")
        if err.get("hint"):
            typer.echo(f"hint: {err['hint']}")
    outs = [{"task": u["key"], **o} for u in doc["units"] for o in u.get("outputs", [])]
    if outs:
        typer.echo("outputs:")
        table(
            [
                {
                    "task": o["task"],
                    "path": o["path"],
                    "size": _size(o["size"]),
                    "sha256": o["sha256"][:16],
                    "local": o["local_path"],
                }
                for o in outs
            ],
            ["task", "path", "size", "sha256", "local"],
        )
    receipts = [u for u in doc["units"] if u.get("receipt")]
    if receipts:
        typer.echo("usage receipts (signed by the provider, verified here):")
        rows = []
        for u in receipts:
            r = u["receipt"]
            rows.append(
                {
                    "task": u["key"],
                    "end": r["reason"] if r["exit_code"] is None else f"exit {r['exit_code']}",
                    "wall": f"{r['wall_s']:.3f}s",
                    "cpu": f"{r['cpu_s']:.3f}s",
                    "peak mem": _size(r["peak_memory_bytes"]),
                    "provider": short(r["provider"]),
                    "receipt": r["cid"][:20] + "…",
                }
            )
        table(rows, ["task", "end", "wall", "cpu", "peak mem", "provider", "receipt"])


@app.command("run")
def run(
    file: Annotated[Path, typer.Argument(help="job spec (YAML or JSON)", exists=True, dir_okay=False)],
    node: Annotated[
        str | None, typer.Option("--node", help="DID of the node to run on (default: the local node)")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="print every log line while it runs")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="return once submitted")] = False,
    timeout: Annotated[float | None, typer.Option(help="give up waiting after this many seconds")] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a job file; shows progress, then its outputs and usage receipts. Exit 0 only on success."""
    with errors(as_json), AgoraClient(api) as c:
        text = file.read_text()
        dirs = [os.getcwd(), str(file.resolve().parent)]
        summary = c.submit_job(text, node=node, base_dirs=dirs)
        job_id = summary["id"]
        for w in summary.get("warnings", []):  # fields the spec sets that have no effect yet
            typer.echo(f"warning: {w}", err=True)
        if detach:
            if as_json:
                emit_json(summary)
            else:
                typer.echo(job_id)
            return
        deadline = time.monotonic() + timeout if timeout else None
        if not as_json:
            typer.echo(f"job {job_id} submitted: {summary['name']} on {short(summary['node'])}")
            _follow(c, job_id, all_lines=follow, deadline=deadline)
        doc = c.job(job_id)
        for _ in range(1_000_000):
            if doc["state"] in TERMINAL:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise AgoraError("timeout", f"job {job_id} did not end in time; it keeps running", retryable=True)
            doc = c.job(job_id, wait=5.0)
        if as_json:
            emit_json(doc)
        else:
            _summary(doc)
        if doc["state"] != "completed":
            raise typer.Exit(1)


@app.command("status")
def status(
    job_id: Annotated[str | None, typer.Argument(help="job id (all jobs when absent)")] = None,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """One job in detail, or the list of jobs."""
    with errors(as_json), AgoraClient(api) as c:
        if job_id is None:
            rows = c.jobs()
            if as_json:
                emit_json(rows)
                return
            table(
                [
                    {
                        "id": j["id"],
                        "name": j["name"],
                        "state": j["state"],
                        "node": short(j["node"]),
                        "tasks": len(j["tasks"]),
                    }
                    for j in rows
                ],
                ["id", "name", "state", "node", "tasks"],
            )
            return
        doc = c.job(job_id)
        if as_json:
            emit_json(doc)
            return
        _summary(doc)
        table(
            [
                {
                    "task": u["key"],
                    "state": u["state"],
                    "attempts": u["attempts"],
                    "allocation": u.get("alloc_id") or "-",
                }
                for u in doc["units"]
            ],
            ["task", "state", "attempts", "allocation"],
        )


@app.command("logs")
def logs(
    job_id: Annotated[str, typer.Argument(help="job id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep printing until the job ends")] = False,
    after: Annotated[int, typer.Option(help="start after this line number")] = 0,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The job's log lines (every task, and the job's state changes)."""
    with errors(as_json), AgoraClient(api) as c:
        if follow and not as_json:
            _follow(c, job_id, all_lines=True, deadline=None)
            return
        page = c.job_logs(job_id, after=after)
        if as_json:
            emit_json(page)
            return
        if page.get("expired"):
            typer.echo("(this node no longer holds the logs of that job)")
        for line in page["lines"]:
            _print_line(line)


@app.command("cancel")
def cancel(job_id: Annotated[str, typer.Argument(help="job id")], api: ApiOpt = None, as_json: JsonOpt = False) -> None:
    """Cancel a job; its running tasks are stopped on their node."""
    with errors(as_json), AgoraClient(api) as c:
        c.cancel_job(job_id)
        doc = c.job(job_id, wait=10.0)
        if as_json:
            emit_json(doc)
        else:
            typer.echo(f"job {job_id}: {doc['state']}")


@app.command("outputs")
def outputs(
    job_id: Annotated[str, typer.Argument(help="job id")], api: ApiOpt = None, as_json: JsonOpt = False
) -> None:
    """The job's verified outputs and where they are on this machine."""
    with errors(as_json), AgoraClient(api) as c:
        rows = c.job_outputs(job_id)
        if as_json:
            emit_json(rows)
            return
        table(
            [
                {
                    "task": o["task"],
                    "path": o["path"],
                    "size": _size(o["size"]),
                    "sha256": o["sha256"],
                    "local": o["local_path"],
                }
                for o in rows
            ],
            ["task", "path", "size", "sha256", "local"],
        )


@app.command("convert")
def convert_cmd(
    file: Annotated[Path, typer.Argument(help="a Kubernetes, Nomad or Bacalhau job file", exists=True, dir_okay=False)],
    source: Annotated[str, typer.Option("--from", help="kubernetes, nomad or bacalhau")],
    fmt: Annotated[str | None, typer.Option("--format", help="yaml, json or hcl (default: guessed)")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Convert another scheduler's job into an agora spec (YAML on stdout, warnings on stderr)."""
    with errors(as_json):
        result = convert(file.read_bytes(), source, fmt)
        spec = result.spec.to_dict()
        if as_json:
            emit_json({"spec": spec, "warnings": result.warnings})
            return
        typer.echo(yaml.safe_dump(spec, sort_keys=False), nl=False)
        for w in result.warnings:
            typer.echo(f"warning: {w}", err=True)


__all__ = ["app"]
