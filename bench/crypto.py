"""Invocation verification rate vs raw PyNaCl Ed25519 verify, in one run.

    .venv/bin/python bench/crypto.py [--n 5000]

agora: `validate_invocation` of fresh invocations, each citing one delegation (node -> caller) —
signature over the received bytes, time bounds, chain linkage, command, policy, replay cache.
The delegation is verified once and cached by CID, as a node does. raw: `VerifyKey.verify` of a
64-byte signature over a message of the same size as the invocation's signed bytes.
Target: agora >= 70 % of raw.
"""

from __future__ import annotations

import argparse
import sys
import time

import nacl.signing

from agora.identity import Keypair
from agora.ucan import Invocation, ReplayCache, delegate, invoke, validate_invocation


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
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
    # wire bytes, decoded on arrival as a node does
    raws = [inv.raw for inv in invs]
    replay = ReplayCache()
    t0 = time.perf_counter()
    for raw in raws:
        validate_invocation(Invocation.decode(raw), proofs, now=now, audience=node.did, replay=replay)
    agora_s = time.perf_counter() - t0

    vk = nacl.signing.VerifyKey(caller.public_bytes)
    signed = [(inv.raw[67:], inv.raw[3:67]) for inv in invs]
    t1 = time.perf_counter()
    for msg, sig in signed:
        vk.verify(msg, sig)
    raw_s = time.perf_counter() - t1

    agora_rate, raw_rate = args.n / agora_s, args.n / raw_s
    print(f"invocations: {args.n}, signed bytes each: {len(signed[0][0])}")
    print(f"raw PyNaCl verify:            {raw_rate:10.0f} /s")
    print(f"agora decode+validate (UCAN): {agora_rate:10.0f} /s")
    print(f"ratio: {agora_rate / raw_rate:.1%} of raw (target >= 70 %)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
