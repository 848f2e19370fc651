"""`make demo` as a person runs it: `python -m agora.devnet.demo` from start to teardown.

It must exit 0, show the market (the index, a job placed by bids with its `why`, a job too big for any node
with its reasons and what would make it fit, a job that waits until a bigger node joins and then runs
there), and leave no process and no directory behind."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def _daemons_under(root: Path) -> list[int]:
    """Pids of the agora daemons whose command line names a path under `root`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"agora.daemon" in args and any(os.fsencode(str(root)) in a for a in args):
            found.append(int(proc.name))
    return found


def assert_numbered(headings: list[str]) -> None:
    """Section numbers 1, 2, 3, … in order, each number one topic, its parts `k/n` 1 to n in order."""
    sections: list[tuple[str, list[tuple[int, int]]]] = []  # (topic, its parts (k, n))
    for h in headings:
        m = re.fullmatch(r"(\d+)\. (.+?)(?: (\d+)/(\d+): .*)?", h)
        assert m, f"a heading without a number: {h!r}"
        part = [(int(m[3]), int(m[4]))] if m[3] else []
        if int(m[1]) == len(sections) and part:
            assert sections[-1][0] == m[2], f"number {m[1]} is used for two topics: {headings}"
            sections[-1][1].extend(part)
        else:
            assert int(m[1]) == len(sections) + 1, f"section {m[1]} after section {len(sections)}: {headings}"
            sections.append((m[2], part))
    for topic, parts in sections:
        assert [k for k, _ in parts] == list(range(1, len(parts) + 1)), (topic, parts)
        assert all(n == len(parts) for _, n in parts), (topic, parts)


@pytest.mark.timeout(420)
def test_make_demo_shows_the_market_and_cleans_up(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the demo's devnet directory lands under tmp_path
    env.pop("AGORA_DEMO_KEEP", None)
    proc = subprocess.run(
        [sys.executable, "-m", "agora.devnet.demo"],
        capture_output=True,
        text=True,
        timeout=400,
        env=env,
        check=False,
    )
    out = proc.stdout
    assert proc.returncode == 0, out[-6000:] + proc.stderr[-3000:]

    # every heading has a number; one topic per number, its parts k/n in order; the numbers 1, 2, 3, … in order
    assert_numbered(re.findall(r"^== (.*?)(?: =+)?$", out, re.M))
    # a contract's repeated steps are shown once with their count, and the FL order is explained
    assert re.search(r"created → bound_to_round ×3 → escrow_locked → ", out), out
    assert "the round escrows are locked at the hub's ledger before the contract opens" in out

    # what the demo showed before the market: discovery, pings, refusals, jobs on a grant
    assert "forged signature" in out and "same ping replayed" in out
    assert re.search(r"5. jobs 2/4: .*\n(?:.*\n)*?  job job-\w+: completed", out)

    # the index: the three first nodes with the prices they set, then the node that joins
    market = out[out.index("6. money and the market 2/6") :]
    table = market[: market.index("6. money and the market 3/6")]
    for name, price in (("node-1", 2), ("node-2", 3), ("node-3", 4)):
        assert re.search(rf"^    {name} +offer-\w+ .* {price}/cpu-s {price}/GiB-s", table, re.M), table

    # placed by the market: three bids, the cheapest one (node-1's) awarded, the job ran
    placed = market[market.index("6. money and the market 3/6") : market.index("6. money and the market 4/6")]
    assert "placed by the market on node-1" in placed, placed
    assert len(re.findall(r"^    bid from node-\d: \d+$", placed, re.M)) == 3, placed
    assert re.search(r"job job-\w+: completed", placed), placed

    # too big: pending with every node's reasons and what would make it fit, then cancelled
    big = market[market.index("6. money and the market 4/6") : market.index("6. money and the market 5/6")]
    assert "pending (position 1 of 1" in big, big
    assert len(re.findall(r"rejected insufficient_cpu: need 16 cores, free \S+ cores?; insufficient_memory", big)) == 3
    assert re.search(r"would fit on node-\d: lower cpu to .* and lower memory to", big), big
    assert re.search(r"agora job cancel job-\w+  ->  cancelled", big), big

    # waits: pending (every node's ad offers too little memory), then node-4 joins and the job runs there
    waits = market[market.index("6. money and the market 5/6") :]
    assert "pending, position 1 of 1, blocked by insufficient_memory x3" in waits, waits
    assert re.search(r"would fit on node-\d: lower memory to 1 GiB", waits), waits
    assert "node-4 joins the devnet" in waits and re.search(r"^    node-4 +offer-\w+ ", waits, re.M), waits
    assert re.search(r"job job-\w+: completed on node-4 at \d+", waits), waits
    assert re.search(r"states: submitted .*pending .*committed .*running .*completed", waits), waits

    # money: the hub operator funded every member at `up`, a member may not mint, the chain verifies at the end
    money = out[out.index("6. money and the market 1/6") : out.index("6. money and the market 2/6")]
    assert len(re.findall(r"^    entry \d mint by hub: ", money, re.M)) == 4, money
    assert "->  ledger_unauthorized" in money, money
    after = out[out.index("6. money and the market 6/6") :]
    assert re.search(r"^    node-4 +- +[\d,]+ +\(joined; funded by the operator\)", after, re.M), after
    assert re.search(r"ledger ok: \d+ entries, sum 0; the hub's own check agrees", after), after
    # market jobs paid: the requester (node-2) spent, and what it spent went to providers
    changes = dict(re.findall(r"^    (node-\d|hub) +[\d,]+ +[\d,]+ +([+-][\d,]+)$", after, re.M))
    assert int(changes["node-2"].replace(",", "")) < 0, after
    assert sum(int(v.replace(",", "")) for k, v in changes.items() if k != "node-2") > 0, after
    # one contract's timeline, in order, released against the receipt both parties signed
    timeline = after[after.index("$ agora contract show") :]
    steps = re.findall(r"^    \+ *[\d.]+s  (\w+)", timeline, re.M)
    assert steps[:2] == ["created", "escrow_locked"] and steps[-1] == "escrow_released", timeline
    assert steps.index("running") < steps.index("delivered") < steps.index("escrow_released"), timeline

    # training: the commands it shows are the ones a newcomer can copy (`dataset add` wants its --licence)
    training = out[out.index("7. federated learning") : out.index("8. inference")]
    assert len(re.findall(r"\$ agora dataset add \S+ --tags digits --licence \S+ --price-per-update", training)) == 3

    # inference: node-1 serves a model, node-2 gets a signed quote, a metered (verified) answer, and pays
    infer = out[out.index("8. inference") :]
    assert re.search(r"signed quote from \S+: at most \d+, valid until \d+", infer), infer
    assert re.search(r"inference metering: \d+ in / [1-9]\d* out tokens, .* verified", infer), infer
    assert re.search(r"inference paid: [1-9]\d* from node-2 to node-1", infer), infer

    # teardown: the five processes stopped, nothing left running, the directory gone
    assert "stopped 5 processes: node-4, node-3, node-2, node-1, hub" in out, out[-2000:]
    assert _daemons_under(tmp_path) == []
    assert not any(p.name.startswith("agora-demo-") for p in tmp_path.iterdir())
