"""The inference protocol's messages: model offers (in capacity ads), signed quotes, signed metering records.

Both sides import this module, so the schema of each message lives here only:

    ModelOffer                        a model a provider serves (in its capacity ad's `models`)
    agora/inference/quote@1.0.0       Quote           signed by the provider: prices for one requester,
                                                      one model, valid until a time
    agora/inference/meter@1.0.0       MeteringRecord  signed by the provider: what one request used
                                                      (runner's token counts, TTFT, duration, the
                                                      hashes of the prompt and the output, quote, price)

Prices are integers (minor units) per 1,000 tokens; `price_of` is the one rule that turns token
counts into a price (rounded up per direction, so a request never costs 0 by splitting it).

Prompts and outputs never travel in these records, only their SHA-256 (`content_hash`): a metering
record can be logged, stored and shown without leaking what was asked or answered.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, ClassVar

from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.wire.market import _Fields, _Signed
from agora.wire.messages import MESSAGE_TYPES
from agora.wire.model_offer import MAX_MODELS, MODEL_KINDS, ModelOffer, models_from_wire, price_of, valid_model_id

QUOTE_TAG = "agora/inference/quote@1.0.0"
METER_TAG = "agora/inference/meter@1.0.0"
_HEX64 = re.compile(r"[0-9a-f]{64}")

MESSAGE_TYPES.update(
    {
        QUOTE_TAG: "inference quote: a provider's signed per-token prices for one requester and model, valid until",
        METER_TAG: "inference metering: a provider's signed usage record for one request (hashes, never content)",
    }
)


def content_hash(data: str | bytes) -> str:
    """SHA-256 hex of a prompt or an output (UTF-8): what records, logs and stores may hold instead."""
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


@dataclass(frozen=True)
class Quote(_Signed):
    """A provider's firm per-token prices for one requester and one model until `valid_until`, with the
    most it will charge for the estimate (`max_total`: what a pay-before allowance reserves)."""

    TAG: ClassVar[str] = QUOTE_TAG
    SIGNER: ClassVar[str] = "prov"
    KEYS: ClassVar[tuple[str, ...]] = ("prov", "req", "model", "pin", "pout", "ein", "eout", "max", "iat", "until", "n")
    CODE: ClassVar[str] = "quote_invalid"
    WHAT: ClassVar[str] = "inference quote"

    provider: str
    requester: str
    model: str
    price_in: int
    price_out: int
    est_in: int
    est_out: int
    max_total: int
    iat: int
    valid_until: int
    nonce: str

    @classmethod
    def issue(
        cls,
        keypair: Keypair,
        *,
        requester: str,
        offer: ModelOffer,
        est_in: int,
        est_out: int,
        iat: int,
        ttl_s: int,
        nonce: str,
    ) -> Quote:
        q = cls(
            keypair.did,
            requester,
            offer.model,
            offer.price_in,
            offer.price_out,
            est_in,
            est_out,
            offer.price(est_in, est_out),
            iat,
            iat + ttl_s,
            nonce,
        )
        return q._sealed(keypair)

    def price(self, tokens_in: int, tokens_out: int) -> int:
        return price_of(tokens_in, tokens_out, self.price_in, self.price_out)

    def check_valid(self, now: float, *, requester: str | None = None, model: str | None = None) -> None:
        """Raise `quote_expired` past valid-until, `quote_invalid` for another requester or model."""
        if requester is not None and self.requester != requester:
            raise AgoraError("quote_invalid", f"the quote is for {self.requester}, not {requester}")
        if model is not None and self.model != model:
            raise AgoraError("quote_invalid", f"the quote is for model {self.model!r}, not {model!r}")
        if now > self.valid_until:
            raise AgoraError(
                "quote_expired",
                f"the quote expired at {self.valid_until} (now {int(now)})",
                details={"valid_until": self.valid_until},
            )

    def _payload(self) -> dict[str, Any]:
        return {
            "prov": self.provider,
            "req": self.requester,
            "model": self.model,
            "pin": self.price_in,
            "pout": self.price_out,
            "ein": self.est_in,
            "eout": self.est_out,
            "max": self.max_total,
            "iat": self.iat,
            "until": self.valid_until,
            "n": self.nonce,
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> Quote:
        model = f.str_("model", max_len=128)
        if not valid_model_id(model):
            raise f.bad("model", "a model id")
        q = cls(
            f.did("prov"),
            f.did("req"),
            model,
            f.int_("pin"),
            f.int_("pout"),
            f.int_("ein"),
            f.int_("eout"),
            f.int_("max"),
            f.int_("iat"),
            f.int_("until"),
            f.str_("n", max_len=64),
        )
        if q.valid_until < q.iat:
            raise f.bad("until", "not before iat")
        if q.max_total != q.price(q.est_in, q.est_out):
            raise f.bad("max", "the quoted prices applied to the estimate")
        return q


@dataclass(frozen=True)
class MeteringRecord(_Signed):
    """What one request used, signed by the provider: the runner's own token counts, time to first token
    and duration in ms, the SHA-256 of the prompt and of the output delivered, the quote (by CID) and the
    price that quote's prices give for those counts. `partial`: the stream stopped before the end."""

    TAG: ClassVar[str] = METER_TAG
    SIGNER: ClassVar[str] = "prov"
    KEYS: ClassVar[tuple[str, ...]] = (
        "prov",
        "req",
        "quote",
        "model",
        "tin",
        "tout",
        "ttft",
        "dur",
        "ph",
        "oh",
        "price",
        "part",
    )
    CODE: ClassVar[str] = "metering_invalid"
    WHAT: ClassVar[str] = "metering record"

    provider: str
    requester: str
    quote: CID
    model: str
    tokens_in: int
    tokens_out: int
    ttft_ms: int
    duration_ms: int
    prompt_hash: str
    output_hash: str
    price: int
    partial: bool = False

    @classmethod
    def issue(
        cls,
        keypair: Keypair,
        *,
        quote: Quote,
        tokens_in: int,
        tokens_out: int,
        ttft_ms: int,
        duration_ms: int,
        prompt_hash: str,
        output_hash: str,
        partial: bool = False,
    ) -> MeteringRecord:
        rec = cls(
            keypair.did,
            quote.requester,
            quote.cid,
            quote.model,
            tokens_in,
            tokens_out,
            ttft_ms,
            duration_ms,
            prompt_hash,
            output_hash,
            quote.price(tokens_in, tokens_out),
            partial,
        )
        return rec._sealed(keypair)

    def _payload(self) -> dict[str, Any]:
        return {
            "prov": self.provider,
            "req": self.requester,
            "quote": self.quote,
            "model": self.model,
            "tin": self.tokens_in,
            "tout": self.tokens_out,
            "ttft": self.ttft_ms,
            "dur": self.duration_ms,
            "ph": self.prompt_hash,
            "oh": self.output_hash,
            "price": self.price,
            "part": self.partial,
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> MeteringRecord:
        for key in ("ph", "oh"):
            v = f.p[key]
            if not isinstance(v, str) or not _HEX64.fullmatch(v):
                raise f.bad(key, "a SHA-256 in lowercase hex")
        if not isinstance(f.p["part"], bool):
            raise f.bad("part", "a boolean")
        return cls(
            f.did("prov"),
            f.did("req"),
            f.cid("quote"),
            f.str_("model", max_len=128),
            f.int_("tin"),
            f.int_("tout"),
            f.int_("ttft"),
            f.int_("dur"),
            f.p["ph"],
            f.p["oh"],
            f.int_("price"),
            f.p["part"],
        )


__all__ = [
    "MAX_MODELS",
    "METER_TAG",
    "MODEL_KINDS",
    "QUOTE_TAG",
    "MeteringRecord",
    "ModelOffer",
    "Quote",
    "content_hash",
    "models_from_wire",
    "price_of",
    "valid_model_id",
]
