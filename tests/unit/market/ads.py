"""Capacity ads for the market tests, built directly (unsigned) or signed by a real key."""

from __future__ import annotations

from typing import Any

from agora.identity import Keypair
from agora.models.capability import Capability, GiB
from agora.models.offer import ResourceOffer
from agora.wire.market import CapacityAd, ExecutorState

NOW = 10_000


def did(name: str) -> str:
    return f"did:key:z6Mk{name}"


def offer(
    provider: str,
    *,
    price: dict[str, Any] | None = None,
    terms: dict[str, Any] | None = None,
    total: dict[str, Any] | None = None,
    valid: tuple[int, int] = (0, 100_000),
) -> ResourceOffer:
    return ResourceOffer.from_dict(
        {
            "kind": "resources",
            "offer_id": f"o-{provider[-6:]}",
            "provider": provider,
            "resources": total or {"cpu_millis": 8000, "memory_bytes": 16 * GiB, "executors": ["wasm", "docker"]},
            "price": price or {"base": {"cpu_second": 1}},
            "terms": terms or {},
            "valid_from": valid[0],
            "valid_until": valid[1],
        }
    )


def ad(
    name: str,
    *,
    cpu: int = 4000,
    memory: int = 8 * GiB,
    executors: dict[str, ExecutorState] | None = None,
    labels: dict[str, str] | None = None,
    location: str | None = None,
    bench: float | None = 1000.0,
    iat: int = NOW - 10,
    ttl: int = 120,
    seq: int = 1,
    **offer_kw: Any,
) -> CapacityAd:
    provider = did(name)
    execs = executors if executors is not None else {"wasm": ExecutorState(True)}
    free = Capability(
        cpu_millis=cpu,
        memory_bytes=memory,
        disk_bytes=100 * GiB,
        executors=frozenset(n for n, s in execs.items() if s.available),
        labels=labels or {},
        location=location,
        arch="x86_64",
    )
    return CapacityAd(provider, seq, iat, ttl, offer(provider, **offer_kw), free, execs, bench, "0.1.0")


def signed_ad(kp: Keypair, *, seq: int = 1, iat: int = NOW, cpu: int = 4000) -> CapacityAd:
    return CapacityAd.issue(
        kp,
        seq=seq,
        iat=iat,
        ttl_s=120,
        offer=offer(kp.did),
        free=Capability(cpu_millis=cpu, memory_bytes=4 * GiB),
        executors={"wasm": ExecutorState(True)},
        benchmark_score=1000.0,
        version="0.1.0",
    )
