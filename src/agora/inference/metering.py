"""Verifying a provider's signed metering record (router and requester run the same checks).

A record is accepted only when all of these hold, else `metering_invalid` names the first that failed:
- it opens and its signature verifies against the provider the request went to;
- it is for this quote (by CID), this requester and this model;
- its prompt hash is the hash of what was sent, its output hash the hash of what was received;
- its token counts are the ones the answer itself reported (`usage`), within the request's max_tokens and
  the model's context;
- its price is the quote's prices applied to its counts.
`MeteringAudit` counts accepted and refused records per provider; a refused record is never paid.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from agora.errors import AgoraError
from agora.wire.inference import MeteringRecord, Quote


def _bad(what: str, field_: str) -> AgoraError:
    return AgoraError("metering_invalid", f"metering record: {what}", details={"field": field_})


@dataclass(frozen=True)
class Expected:
    """What the verifier knows independently of the record."""

    prompt_hash: str
    output_hash: str
    tokens_in: int | None = None  # the answer's usage, when it reported one
    tokens_out: int | None = None
    max_tokens: int | None = None
    context: int | None = None


def verify_record(raw: bytes, *, quote: Quote, expected: Expected) -> MeteringRecord:
    try:
        rec = MeteringRecord.open(raw, expected_signer=quote.provider)
    except AgoraError as exc:
        raise _bad(exc.message, "signature") from None
    if rec.quote != quote.cid:
        raise _bad("it names another quote", "quote")
    if rec.requester != quote.requester or rec.model != quote.model:
        raise _bad("it is for another requester or model than its quote", "model")
    if rec.prompt_hash != expected.prompt_hash:
        raise _bad("its prompt hash is not the hash of what was sent", "ph")
    if rec.output_hash != expected.output_hash:
        raise _bad("its output hash is not the hash of what was received", "oh")
    if expected.tokens_in is not None and rec.tokens_in != expected.tokens_in:
        raise _bad(f"tokens in {rec.tokens_in}, the answer reported {expected.tokens_in}", "tin")
    if expected.tokens_out is not None and rec.tokens_out != expected.tokens_out:
        raise _bad(f"tokens out {rec.tokens_out}, the answer reported {expected.tokens_out}", "tout")
    if expected.max_tokens is not None and rec.tokens_out > expected.max_tokens:
        raise _bad(f"tokens out {rec.tokens_out} exceed the request's max_tokens {expected.max_tokens}", "tout")
    if expected.context is not None and rec.tokens_in > expected.context:
        raise _bad(f"tokens in {rec.tokens_in} exceed the model's context {expected.context}", "tin")
    if rec.price != quote.price(rec.tokens_in, rec.tokens_out):
        raise _bad(f"price {rec.price} is not the quoted prices applied to its counts", "price")
    return rec


@dataclass
class MeteringAudit:
    """Accepted and refused records per provider (what `metrics_summary` and trust read)."""

    accepted: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)

    def check(self, raw: bytes, *, quote: Quote, expected: Expected) -> MeteringRecord:
        try:
            rec = verify_record(raw, quote=quote, expected=expected)
        except AgoraError:
            self.refused[quote.provider] += 1
            raise
        self.accepted[quote.provider] += 1
        return rec


__all__ = ["Expected", "MeteringAudit", "verify_record"]
