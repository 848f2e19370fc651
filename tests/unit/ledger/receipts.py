"""Signed evidence for ledger tests: a provider's usage receipt and the requester's countersignature."""

from __future__ import annotations

from typing import Any

from agora.codec import CID
from agora.identity import Keypair
from agora.wire import OutputDigest, UsageReceipt
from agora.wire.inference import MeteringRecord, ModelOffer, Quote
from agora.wire.settle import countersign


def usage(provider: Keypair, requester: str, *, alloc: str = "alloc-1", **over: Any) -> UsageReceipt:
    fields: dict[str, Any] = {
        "alloc_id": alloc,
        "requester": requester,
        "job": "job-1",
        "task": "main",
        "engine": "wasm",
        "exit_code": 0,
        "reason": "exited",
        "error_code": None,
        "started_at": 1.0,
        "ended_at": 2.0,
        "wall_s": 1.0,
        "cpu_s": 0.5,
        "peak_memory_bytes": 1024,
        "outputs": [OutputDigest(name="out", path="out.txt", sha256="a" * 64, size=3)],
        "invocation": CID.of(b"start invocation"),
        "iat": 1,
    }
    fields.update(over)
    return UsageReceipt.issue(provider, **fields)


def metering(
    provider: Keypair,
    requester: Keypair,
    contract: str,
    amount: int,
    *,
    units: int = 1,
    total: int = 1,
    alloc: str = "alloc-1",
) -> bytes:
    """A usage receipt of `provider` for `requester`, countersigned by `requester` for `contract`."""
    receipt = usage(provider, requester.did, alloc=alloc)
    return countersign(requester, receipt, contract=contract, units=units, total=total, amount=amount, iat=2)


def inference_record(
    provider: Keypair,
    requester: str,
    *,
    tokens_in: int = 1000,
    tokens_out: int = 500,
    price: tuple[int, int] = (100, 200),
    nonce: str = "n",
) -> MeteringRecord:
    """A provider's signed inference metering record for `requester` (default price 100 + 100 = 200)."""
    offer = ModelOffer("m1", "chat", 4096, price[0], price[1])
    quote = Quote.issue(
        provider, requester=requester, offer=offer, est_in=1000, est_out=500, iat=1, ttl_s=60, nonce=nonce
    )
    return MeteringRecord.issue(
        provider,
        quote=quote,
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        ttft_ms=5,
        duration_ms=9,
        prompt_hash="a" * 64,
        output_hash="b" * 64,
    )
