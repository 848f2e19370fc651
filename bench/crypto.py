"""Invocation verification rate vs raw PyNaCl Ed25519 verify, in one run.

    .venv/bin/python bench/crypto.py [--n 5000] [--smoke]

agora: `validate_invocation` of fresh invocations, each citing one delegation (node -> caller) —
signature over the received bytes, time bounds, chain linkage, command, policy, replay cache.
The delegation is verified once and cached by CID, as a node does. raw: `VerifyKey.verify` of a
64-byte signature over a message of the same size as the invocation's signed bytes.
Target: agora >= 70 % of raw.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import nacl.signing

from agora.identity import Keypair
from agora.ucan import Invocation, ReplayCache, delegate, invoke, validate_invocation


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--smoke", action="store_true", help="a handful of invocations: checks the benchmark runs")
    args = ap.parse_args()
    if args.smoke:
        args.n = 20
    node, caller = Keypair.generate(), Keypair.generate()
    now = int(time.time())
    dlg = delegate(node, aud=caller.did, sub=node.did, cmd="/agora/alloc", exp=now + 3600, pol=[["<=", ".cpu", 8]])
    proofs = {dlg.cid: dlg}
    invs = [
        invoke(
            caller,
            sub=node.did,
            aud=node.did,
            cmd="/agora/alloc/start",
            args={"cpu": 2, "task": f"t{i}"},
            prf=[dlg.cid],
            exp=now + 300,
            iat=now,
        )
        for i in range(args.n)
    ]
    # wire bytes, decoded on arrival as a node does; agora and raw alternate in rounds so that a change in
    # machine load hits both alike, and the ratio is the median of the per-round ratios
    raws = [inv.raw for inv in invs]
    vk = nacl.signing.VerifyKey(caller.public_bytes)
    signed = [(inv.raw[67:], inv.raw[3:67]) for inv in invs]
    replay = ReplayCache()
    rounds = 10
    size = args.n // rounds
    agora_times, raw_times = [], []
    for r in range(rounds):
        chunk = slice(r * size, (r + 1) * size)
        t0 = time.perf_counter()
        for raw in raws[chunk]:
            validate_invocation(Invocation.decode(raw), proofs, now=now, audience=node.did, replay=replay)
        agora_times.append(time.perf_counter() - t0)
        t1 = time.perf_counter()
        for msg, sig in signed[chunk]:
            vk.verify(msg, sig)
        raw_times.append(time.perf_counter() - t1)
    ratio = statistics.median(r / a for a, r in zip(agora_times, raw_times, strict=True))
    agora_s, raw_s = min(agora_times) * rounds, min(raw_times) * rounds
    agora_rate, raw_rate = args.n / agora_s, args.n / raw_s
    print(f"invocations: {args.n}, signed bytes each: {len(signed[0][0])}")
    print(f"raw PyNaCl verify:            {raw_rate:10.0f} /s (best round)")
    print(f"agora decode+validate (UCAN): {agora_rate:10.0f} /s (best round)")
    print(f"ratio: {ratio:.1%} of raw (median of {rounds} interleaved rounds; target >= 70 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
