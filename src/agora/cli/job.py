"""`agora job run|status|logs|cancel|outputs|validate|convert`: jobs, through the local node's API.

`run` submits the file's text (relative paths in it are looked up from the current directory, then
from the file's own directory), shows progress until the job ends (state changes; `--follow` adds
every log line; on a terminal, a spinner with the state and the elapsed time), then its outputs and the
usage receipts, and exits 0 only when the job completed. Ctrl-C (or `--timeout`) stops watching and says
how to follow or cancel the job, which keeps running unless `--cancel-on-exit`. `validate` and `convert`
are local: they need no node.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from agora.cli.output import PLAIN, detail_lines, emit_json, errors, short, table
from agora.cli.progress import DETACH, Waiting, emit_line
from agora.client import AgoraClient, resolve_node
from agora.errors import AgoraError

app = typer.Typer(help="Run jobs and follow them.", no_args_is_help=True, rich_markup_mode=PLAIN)

JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]
ApiOpt = Annotated[str | None, typer.Option("--api", help="node API URL (default: $AGORA_API or the local node)")]
TERMINAL = ("completed", "failed", "cancelled")


def _size(n: int) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


_DID = re.compile(r"did:key:z[1-9A-HJ-NP-Za-km-z]{24,}")
_EPOCH = re.compile(r"\b(until|by|at) (1[0-9]{9})(?:\.[0-9]+)?\b")  # a unix time (2001-2033), not a price
_MOVE = re.compile(r"^(?:job \S+|[^\s:]+): (\S+) \((.*)\)$")  # `KEY: state (cause)` / `job ID: state (cause)`


def readable(text: str) -> str:
    """A node's own log line (stream `agora`) as a person reads it: DIDs short, unix times as UTC. `--json`
    keeps the line as the node wrote it."""
    text = _DID.sub(lambda m: short(m.group(0)), text)
    return _EPOCH.sub(lambda m: f"{m.group(1)} {time.strftime('%H:%M:%S', time.gmtime(int(m.group(2))))} UTC", text)


class _Printer:
    """Prints log lines. The node logs each move of a task (`hello: running (...)`) and of the job
    (`job ID: running (...)`); where the job's move only repeats the state its task just reached, it is said
    once, in the task's line. The task is in the brackets, so the line starts with the state."""

    def __init__(self) -> None:
        self._task_state: str | None = None

    def __call__(self, line: dict[str, Any]) -> None:
        task = line.get("task") or "job"
        if line.get("stream") != "agora":
            err = line.get("stream") == "stderr"
            typer.echo(f"[{task}] {line.get('line')}", err=err)
            return
        text = str(line.get("line"))
        move = _MOVE.match(text)
        if move is not None:
            state = move.group(1)
            if not line.get("task") and state == self._task_state:
                self._task_state = None
                return
            self._task_state = state if line.get("task") else None
            text = f"{state} ({move.group(2)})"
        typer.echo(f"[{task}] » {readable(text)}")


def _json_line(event: str, **data: Any) -> None:
    """One compact JSON object per line (`--json --follow`): a script reads them as they come."""
    emit_line(event, data)


def _follow(
    c: AgoraClient,
    job_id: str,
    *,
    all_lines: bool,
    deadline: float | None,
    as_json: bool = False,
    waiting: Waiting | None = None,
) -> None:
    after = 0
    print_line = _Printer()
    live = waiting is not None and waiting.live
    wait = 1.0 if live else 2.0  # the live line's state is at most a second old; its clock ticks on its own
    said_pending = as_json  # a job that fits nowhere yet: say why once, then keep waiting for it
    state = ""
    for _ in range(1_000_000):  # bounded; each round waits up to `wait` s for news
        if deadline is not None and time.monotonic() > deadline:
            raise _StillRunning(job_id)
        page = c.job_logs(job_id, after=after, wait=wait)
        if page.get("dropped"):
            if as_json:
                _json_line("dropped", count=page["dropped"])
            else:
                typer.echo(f"[job] » {page['dropped']} log lines were dropped (read too slowly)")
        for line in page["lines"]:
            if as_json:
                _json_line("log", **line)
            elif all_lines or line.get("stream") == "agora":
                print_line(line)
        after = int(page["next"])
        if page.get("done"):
            return
        if waiting is None:
            continue
        now = str(c.job(job_id)["state"])
        if now != state:
            state = now
            waiting.event("state", job_id=job_id, state=state)
        if state == "pending" and not said_pending:
            said_pending = True
            _print_why(c.job_why(job_id), brief=True)
            typer.echo(
                "waiting in this node's queue until the job's deadline; "
                f"Ctrl-C leaves it queued (agora job cancel {job_id})"
            )
        waiting.status(state)


class _StillRunning(Exception):
    """--timeout passed before the job ended (the job itself keeps running)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(job_id)
        self.job_id = job_id


def _commands(job_id: str, api: str | None) -> list[str]:
    at = f" --api {api}" if api else ""
    return [
        f"follow it:  agora job logs {job_id} --follow{at}",
        f"status:     agora job status {job_id}{at}",
        f"cancel it:  agora job cancel {job_id}{at}",
    ]


def _cancel(c: AgoraClient, job_id: str) -> str:
    """Cancel on the way out (--cancel-on-exit); a fresh connection: the old one may be mid-request."""
    with AgoraClient(c.base_url, timeout=15) as fresh:
        fresh.cancel_job(job_id)
        return str(fresh.job(job_id, wait=10.0)["state"])


def _where(doc: dict[str, Any]) -> str:
    """The node a job runs on, or the market when it names none (each unit shows where it landed)."""
    return short(doc["node"]) if doc.get("node") else "the market"


def _summary(doc: dict[str, Any]) -> None:
    typer.echo(f"job {doc['id']} ({doc['name']}) {doc['state']} on {_where(doc)}")
    if doc.get("error"):
        err = doc["error"]
        where = f" in task {err['task']}" if err.get("task") else ""
        typer.echo(f"error{where}: {err.get('code')}: {err.get('message')}")
        for line in detail_lines(err.get("details")):
            typer.echo(line)
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
        str | None,
        typer.Option("--node", help="node to run on: a DID, or a devnet name like node-2 (default: the local node)"),
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="print every log line while it runs")] = False,
    detach: Annotated[bool, typer.Option("--detach", "-d", help="return once submitted")] = False,
    timeout: Annotated[
        float | None, typer.Option(help="stop waiting after this many seconds (the job keeps running)")
    ] = None,
    cancel_on_exit: Annotated[
        bool, typer.Option("--cancel-on-exit", help="cancel the job if this command ends first (Ctrl-C, --timeout)")
    ] = False,
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run a job file; shows progress, then its outputs and usage receipts. Exit 0 only on success.

    Relative paths in the file are looked up from the current directory, then from the file's own one.
    Ctrl-C stops watching, not the job (unless --cancel-on-exit); it prints how to follow or cancel it.
    With --json --follow, every event is one JSON line (submitted, log, end)."""
    with errors(as_json), AgoraClient(api) as c:
        text = file.read_text()
        dirs = [os.getcwd(), str(file.resolve().parent)]
        summary = c.submit_job(text, node=resolve_node(node) if node else None, base_dirs=dirs)
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
        stream = as_json and follow
        try:
            doc = _watch(c, summary, follow=follow, as_json=as_json, deadline=deadline)
        except KeyboardInterrupt:
            _left_early(c, summary, api, cancel_on_exit=cancel_on_exit, as_json=as_json, why="interrupted")
            raise typer.Exit(DETACH) from None
        except _StillRunning:
            _left_early(c, summary, api, cancel_on_exit=cancel_on_exit, as_json=as_json, why=f"--timeout {timeout:g}s")
            raise typer.Exit(1) from None
        if stream:
            _json_line("end", job=doc)
        elif as_json:
            emit_json(doc)
        else:
            _summary(doc)
            if doc.get("market") and doc["state"] != "completed":  # nothing fitted: say why
                _print_why(c.job_why(job_id), brief=True)
        if doc["state"] != "completed":
            raise typer.Exit(1)


def _watch(
    c: AgoraClient, summary: dict[str, Any], *, follow: bool, as_json: bool, deadline: float | None
) -> dict[str, Any]:
    job_id = summary["id"]
    if as_json and follow:
        _json_line("submitted", job=summary)
        with Waiting(f"job {job_id}", json_lines=True) as waiting:
            _follow(c, job_id, all_lines=True, deadline=deadline, as_json=True, waiting=waiting)
    elif not as_json:
        typer.echo(f"job {job_id} submitted: {summary['name']} on {_where(summary)}")
        with Waiting(f"job {job_id}") as waiting:
            _follow(c, job_id, all_lines=follow, deadline=deadline, waiting=waiting)
    doc = c.job(job_id)
    for _ in range(1_000_000):
        if doc["state"] in TERMINAL:
            break
        if deadline is not None and time.monotonic() > deadline:
            raise _StillRunning(job_id)
        doc = c.job(job_id, wait=5.0)
    return doc


def _left_early(
    c: AgoraClient, summary: dict[str, Any], api: str | None, *, cancel_on_exit: bool, as_json: bool, why: str
) -> None:
    """This command stops watching before the job ended: say so, and how to get back to it."""
    job_id = summary["id"]
    state = None
    if cancel_on_exit:
        try:
            state = _cancel(c, job_id)
        except KeyboardInterrupt:
            state = None
        except AgoraError as err:
            typer.echo(f"could not cancel job {job_id}: {err.code}: {err.message}", err=True)
    if as_json:
        _json_line("left", job_id=job_id, reason=why, cancelled=state is not None, state=state)
        return
    if state is not None:
        typer.echo(f"{why}: job {job_id} {state} (--cancel-on-exit)", err=True)
        return
    typer.echo(f"{why}: job {job_id} keeps running on {_where(summary)}", err=True)
    for line in _commands(job_id, api):
        typer.echo(f"  {line}", err=True)


@app.command("validate")
def validate(
    file: Annotated[Path, typer.Argument(help="job spec (YAML or JSON)", exists=True, dir_okay=False)],
    as_json: JsonOpt = False,
) -> None:
    """Check a job file offline (no node needed): every problem at once, with where it is."""
    from agora.jobs import validate_file

    with errors(as_json):
        spec, warnings = validate_file(file)
        warnings = [*warnings, *_missing_files(spec, [Path.cwd(), file.resolve().parent])]
        if as_json:
            emit_json({"valid": True, "spec": spec.to_dict(), "warnings": warnings})
            return
        engines = ", ".join(sorted({t.engine for t in spec.tasks}))
        typer.echo(f"{file}: valid: job {spec.name!r}, {len(spec.tasks)} task(s) ({engines})")
        for warning in warnings:
            typer.echo(f"warning: {warning}", err=True)


def _missing_files(spec: Any, dirs: list[Path]) -> list[str]:
    """Local files the spec names (a wasm module, `local` inputs) that `agora job run` would not find from here:
    it looks them up like this (the current directory, then the file's), and would fail before submitting."""
    dirs = list(dict.fromkeys(dirs))

    def found(raw: str) -> bool:
        p = Path(raw).expanduser()
        return p.is_file() if p.is_absolute() else any((d / p).is_file() for d in dirs)

    where = ", ".join(str(d) for d in dirs)
    out: list[str] = []
    for i, task in enumerate(spec.tasks):
        module = task.module
        remote = ("sha256:", "cid:", "http://", "https://")
        if task.engine == "wasm" and module and not module.startswith(remote) and not found(module):
            out.append(f"tasks[{i}].module: no file {module!r} in {where}: `agora job run` from here would fail")
        for j, spec_input in enumerate(task.inputs):
            raw = str(spec_input.source.params.get("path", ""))
            if spec_input.source.type == "local" and not found(raw):
                out.append(
                    f"tasks[{i}].inputs[{j}].source.path: no file {raw!r} in {where}: `agora job run` from here "
                    "would fail"
                )
    return out


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
        queue = doc.get("queue")
        if queue:
            blocking = ", ".join(f"{code} x{n}" for code, n in queue["blocking"].items()) or "nothing fits yet"
            typer.echo(f"pending: position {queue['position']} of {queue['of']} in this node's queue; {blocking}")
            if queue.get("deadline"):
                typer.echo(f"waits until {time.strftime('%Y-%m-%d %H:%M:%S', time.gmtime(queue['deadline']))} UTC")
        table(
            [
                {
                    "task": u["key"],
                    "state": u["state"],
                    "node": short(u["node"]) if u.get("node") else "-",
                    "attempts": u["attempts"],
                    "allocation": u.get("alloc_id") or "-",
                }
                for u in doc["units"]
            ],
            ["task", "state", "node", "attempts", "allocation"],
        )
        _print_replicas(doc["units"])


def _print_replicas(units: list[dict[str, Any]]) -> None:
    """Redundant execution: each replica of each unit, its provider, state, output digest and verdict."""
    rows = [
        {
            "task": f"{u['key']}~r{r['slot']}",
            "provider": short(r["provider"]),
            "state": r["state"],
            "outputs": r.get("digest") or "-",
            "verdict": r.get("verdict") or "-",
            "receipt": r.get("receipt") or "-",
        }
        for u in units
        for r in u.get("replicas") or []
    ]
    if rows:
        typer.echo("replicas:")
        table(rows, ["task", "provider", "state", "outputs", "verdict", "receipt"])


def _print_why(why: dict[str, Any], *, brief: bool = False) -> None:
    """Each unit's last market round: candidates with verdict and reasons, bids, declines, what would fit."""
    for key, unit in why["units"].items():
        last = unit.get("last")
        if last is None:
            where = f" on {short(unit['node'])}" if unit.get("node") else ""
            why_none = "none recorded" if why.get("market") else "--node with a grant"
            typer.echo(f"{key}: {unit['state']}{where} (no market round: {why_none})")
            continue
        decision = last["decision"]
        asked = ""
        if last.get("k") and last["outcome"] not in ("no_fit", "not_enough_providers"):
            asked = f", {len(decision.get('chosen', []))} asked for a bid (k {last['k']})"
        typer.echo(
            f"{key}: {unit['state']}; last round {last['outcome']}, {decision.get('considered', 0)} considered, "
            f"{decision.get('passed', 0)} passed{asked}"
        )
        if last.get("excluded"):
            typer.echo(f"  excluded (lost under this unit): {', '.join(short(d) for d in last['excluded'])}")
        if last.get("blocking"):
            typer.echo("  blocked by: " + ", ".join(f"{c} x{n}" for c, n in last["blocking"].items()))
        for s in decision.get("what_would_fit", []):
            typer.echo(f"  would fit on {short(s['provider'])}: {s['text']}")
        if brief:
            continue
        rows = []
        trust = last.get("trust", {})  # the requester's view of each candidate (docs/market.md "Trust")
        for cand in decision.get("candidates", []):
            t = trust.get(cand["provider"])
            rows.append(
                {
                    "provider": short(cand["provider"]),
                    # what became of it in this round (placed here, bid, declined, asked, rejected: ...); an
                    # older node sends only the matching verdict
                    "verdict": cand.get("outcome_text") or cand["verdict"],
                    "quote": "-" if cand["quote"] is None else f"{cand['quote']:,}",
                    "score": f"{cand['score']:.3f}" if cand["ok"] else "-",
                    "trust": "-" if t is None else f"{t['score']:.2f}" + ("" if t["known"] else " (prior)"),
                    "latency": "-" if t is None or t["latency_ms"] is None else f"{t['latency_ms']:.0f} ms",
                    "why": "; ".join(r["text"] for r in cand["reasons"])
                    or ", ".join(f"{k} {v['score']:.2f}" for k, v in cand["breakdown"].items()),
                }
            )
        if rows:
            table(rows, ["provider", "verdict", "quote", "score", "trust", "latency", "why"])
        for b in last.get("bids", []):
            typer.echo(f"  bid {short(b['provider'])}: {b['price']:,}")
        for d in last.get("declines", []):
            typer.echo(
                f"  declined {short(d['provider'])}: " + "; ".join(f"{r['code']}: {r['text']}" for r in d["reasons"])
            )
        for f in last.get("failures", []):
            typer.echo(f"  {f['stage']} failed on {short(f['provider'])}: {f['code']}: {f['message']}")
        if last.get("provider"):
            typer.echo(f"  placed on {short(last['provider'])} at {last['price']:,}")
        for r in unit.get("replicas") or []:
            verdict = f", {r['verdict']}" if r.get("verdict") else ""
            outputs = f", outputs {r['digest']}" if r.get("digest") else ""
            typer.echo(f"  replica {r['slot']} on {short(r['provider'])}: {r['state']}{outputs}{verdict}")


@app.command("why")
def why(
    job_id: Annotated[str, typer.Argument(help="job id")],
    api: ApiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Why the job runs where it runs, or waits: every candidate, its verdict and reasons, bids, declines."""
    with errors(as_json), AgoraClient(api) as c:
        doc = c.job_why(job_id)
        if as_json:
            emit_json(doc)
            return
        typer.echo(f"job {doc['id']} {doc['state']}")
        _print_why(doc)


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
        if follow:
            try:
                _follow(c, job_id, all_lines=True, deadline=None, as_json=as_json)
            except KeyboardInterrupt:
                raise typer.Exit(130) from None
            return
        page = c.job_logs(job_id, after=after)
        if as_json:
            emit_json(page)
            return
        if page.get("expired"):
            typer.echo("(this node no longer holds the logs of that job)")
        print_line = _Printer()
        for line in page["lines"]:
            print_line(line)


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
    import yaml

    from agora.jobs import convert

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
