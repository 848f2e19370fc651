"""Jobs through the CLI the way a person runs them: a devnet, a grant, `agora job run` of the example
file on another node (wasm, and a process in the sandbox), the refusal without a grant, convert."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import FIXTURES, ROOT, require_binary

AGORA = [sys.executable, "-m", "agora.cli"]
ENV = {**os.environ, "AGORA_BENCHMARK": "off"}


def agora(*args: str, cwd: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*AGORA, *args], capture_output=True, text=True, timeout=120, env=ENV, cwd=cwd)
    if check and proc.returncode != 0:
        raise AssertionError(f"agora {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def j(*args: str, **kw: Any) -> Any:
    return json.loads(agora(*args, "--json", **kw).stdout)


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    d = str(tmp_path_factory.mktemp("devnet") / "net")
    state = j("devnet", "up", "--nodes", "2", "--dir", d)
    try:
        yield state
    finally:
        agora("devnet", "down", "--dir", d, check=False)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repo's examples/ as a user has them: the job files and the WAT module, nothing compiled."""
    root = tmp_path_factory.mktemp("work")
    shutil.copytree(ROOT / "examples", root / "examples")
    return root


def test_a_wasm_job_runs_on_a_granted_node(devnet: dict[str, Any], workdir: Path) -> None:
    one, two = devnet["nodes"]
    job_file = "examples/jobs/hello-wasm.yaml"
    # node-2 holds no grant from node-1, but node-1 sells: the market places it there (the only candidate)
    placed = agora("job", "run", job_file, "--node", one["did"], "--follow", "--api", two["api"], cwd=workdir)
    assert "completed" in placed.stdout
    placed_id = placed.stdout.split()[1]
    placed_unit = j("job", "status", placed_id, "--api", two["api"])["units"][0]
    assert placed_unit["node"] == one["did"]
    # node-2's trust in node-1: one success, citing the usage receipt it verified (`agora trust show`)
    trust = j("trust", "show", one["did"], "--api", two["api"])
    assert trust["counts"] == {"success": 1} and trust["score"] > trust["prior"]
    assert trust["records"][0]["cites"]["receipt"] == placed_unit["receipt"]["cid"]
    listed_trust = agora("trust", "list", "--api", two["api"]).stdout
    assert one["did"][-6:] in listed_trust and "success 1" in listed_trust

    g = j("node", "grant", two["did"], "--api", one["api"])
    assert g["delivered"] is True and g["aud"] == two["did"]
    text = agora("node", "grant", two["did"], "--api", one["api"]).stdout
    assert "delivered to that node" in text and "token: " in text

    run = agora("job", "run", job_file, "--node", one["did"], "--follow", "--api", two["api"], cwd=workdir)
    out = run.stdout
    assert "[hello] hello from an agora wasm task" in out
    assert "completed" in out and "usage receipts" in out and "greeting.txt" in out
    job_id = out.split()[1]
    doc = j("job", "status", job_id, "--api", two["api"])
    assert doc["state"] == "completed" and doc["node"] == one["did"]
    assert doc["units"][0]["receipt"]["provider"] == one["did"]
    [output] = j("job", "outputs", job_id, "--api", two["api"])
    assert Path(output["local_path"]).read_text() == "hello from an agora wasm task\n"
    logs = agora("job", "logs", job_id, "--api", two["api"]).stdout
    assert "hello from an agora wasm task" in logs
    listed = j("job", "status", "--api", two["api"])
    assert {x["id"]: x["state"] for x in listed}[job_id] == "completed"
    allocs = j("grant", "list", "--api", one["api"])
    assert [d["aud"] for d in allocs["issued"]] == [two["did"], two["did"]]
    # the token printed by `node grant` can be imported by hand; importing it again changes nothing
    again = agora("grant", "add", g["token"], "--api", two["api"]).stdout
    assert "already held" in again


def test_a_process_job_runs_in_the_sandbox_of_the_granted_node(
    devnet: dict[str, Any], workdir: Path, tmp_path: Path
) -> None:
    require_binary("bwrap", "bubblewrap")
    one, two = devnet["nodes"]
    agora("node", "grant", two["did"], "--api", one["api"])
    spec = tmp_path / "shell.yaml"
    spec.write_text(
        "name: shell\n"
        "tasks:\n"
        "  - name: count\n"
        "    engine: process\n"
        "    command: [/bin/sh, -c, 'for i in 1 2 3; do echo line $i; done; echo ok > /work/outputs/result.txt']\n"
        "    resources: {cpu: 500m, memory: 128Mi, disk: 16Mi}\n"
        "    timeout: 30s\n"
    )
    run = agora("job", "run", str(spec), "--node", one["did"], "--follow", "--api", two["api"], cwd=workdir)
    assert "[count] line 3" in run.stdout and "result.txt" in run.stdout
    job_id = run.stdout.split()[1]
    [output] = j("job", "outputs", job_id, "--api", two["api"])
    assert Path(output["local_path"]).read_text() == "ok\n"


def test_the_example_process_workflow_runs(devnet: dict[str, Any], workdir: Path) -> None:
    require_binary("bwrap", "bubblewrap")
    one, two = devnet["nodes"]
    agora("node", "grant", two["did"], "--api", one["api"])
    run = agora(
        "job",
        "run",
        "examples/jobs/hello-process.yaml",
        "--node",
        one["did"],
        "--follow",
        "--api",
        two["api"],
        cwd=workdir,
    )
    assert "[shout] HELLO FROM AN INLINE INPUT" in run.stdout
    job_id = run.stdout.split()[1]
    [output] = j("job", "outputs", job_id, "--api", two["api"])
    assert Path(output["local_path"]).read_text() == "Hello from Linux\n"


def test_node_info_and_a_failing_job_exit_non_zero(devnet: dict[str, Any], tmp_path: Path) -> None:
    one, _ = devnet["nodes"]
    info = j("node", "info", "--api", one["api"])
    assert info["executors"]["wasm"]["available"] is True
    assert info["executors"]["firecracker"]["available"] is False
    assert "executors:" in agora("node", "info", "--api", one["api"]).stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntasks:\n  - name: t\n    engine: wasm\n    resources: {memory: lots}\n")
    res = agora("job", "run", str(bad), "--api", one["api"], check=False)
    assert res.returncode == 1 and "job_spec_invalid" in res.stderr


def test_run_warns_about_inert_fields_and_a_node_that_fails_a_constraint_refuses(
    devnet: dict[str, Any], workdir: Path
) -> None:
    one, _ = devnet["nodes"]
    example = "examples/jobs/hello-wasm.yaml"  # sets placement.strategy and payment.budget
    two = devnet["nodes"][1]
    res = agora("job", "run", example, "--detach", "--node", two["did"], "--api", one["api"], cwd=workdir)
    assert res.stdout.strip().startswith("job-")  # sent to a named node: the market's fields do nothing
    assert "warning: placement.strategy: has no effect with --node" in res.stderr
    assert "warning: payment.budget: has no effect with --node" in res.stderr
    riscv = workdir / "riscv.yaml"
    riscv.write_text((workdir / example).read_text() + "constraints: [{key: arch, op: in, value: [riscv64]}]\n")
    refused = agora("job", "run", str(riscv), "--node", one["did"], "--api", one["api"], cwd=workdir, check=False)
    assert refused.returncode == 1 and "constraints_unmet" in refused.stderr + refused.stdout
    # placed by the market instead, it fits nowhere: `job run` says why at once, then waits (bounded here)
    args = ("job", "run", str(riscv), "--timeout", "20", "--cancel-on-exit", "--api", one["api"])
    waits = agora(*args, cwd=workdir, check=False)
    assert waits.returncode == 1, waits.stdout + waits.stderr
    assert "waiting in this node's queue" in waits.stdout and "constraint_failed" in waits.stdout, waits.stdout
    assert "cancelled (--cancel-on-exit)" in waits.stderr, waits.stderr


def test_convert_prints_an_agora_spec_and_its_warnings() -> None:
    src = FIXTURES / "jobspecs" / "kubernetes" / "job-pi.yaml"
    res = agora("job", "convert", str(src), "--from", "kubernetes")
    assert res.stdout.startswith("name: ") and "tasks:" in res.stdout
    data = j("job", "convert", str(src), "--from", "kubernetes")
    assert data["spec"]["tasks"] and isinstance(data["warnings"], list)
    wrong = agora("job", "convert", str(src), "--from", "slurm", check=False)
    assert wrong.returncode == 1 and "convert_unknown_engine" in wrong.stderr
