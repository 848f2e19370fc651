"""The metering receipt signed by both parties: what an escrow is released against.

A provider's `UsageReceipt` (`wire/usage.py`) says what ran; on its own it proves only the provider's
side. The requester, after it verified the outputs (or by its automatic rule when unattended),
**countersigns** it: a sealed envelope of its own type tag `agora/metering@1.0.0` (so no other signature
can pass for one) whose payload carries the usage receipt's exact signed bytes and CID, the contract
id, the units delivered out of the units contracted, and the amount (minor units) the requester accepts
to pay. One blob thus holds both signatures, and the ledger can check it without asking anybody.

`countersign` signs as the requester; `open_metering` decodes, checks every field, verifies BOTH
signatures, that the requester who countersigned is the usage receipt's requester, that the parties
are the contract's (provider = payee, requester = payer) and that the receipt names that contract;
anything else is `receipt_invalid` with a message that says which check failed.

An inference request has no usage receipt: its evidence is the provider's signed `MeteringRecord`
(`wire/inference.py`). `countersign_record` seals it, as the requester who verified it, in an envelope of its
own tag `agora/inference/settle@1.0.0` that names the escrow (`inference:<quote CID>`: one escrow per
request, the record names its quote) and accepts the record's price. `open_release` is the one typed place
the ledger reads release evidence from: it opens either kind and returns what a release needs (`Release`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypeVar

from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ucan import Envelope, open_envelope, seal_envelope
from agora.wire.inference import MeteringRecord
from agora.wire.messages import DEFAULT_MAX_MESSAGE, MESSAGE_TYPES, check_size
from agora.wire.usage import UsageReceipt

METERING_TAG = "agora/metering@1.0.0"
MESSAGE_TYPES[METERING_TAG] = "metering receipt: a usage receipt countersigned by the requester (what escrow pays)"
INFERENCE_SETTLE_TAG = "agora/inference/settle@1.0.0"
MESSAGE_TYPES[INFERENCE_SETTLE_TAG] = (
    "inference settlement: a provider's metering record countersigned by the requester (what its escrow pays)"
)
MAX_CONTRACT_ID = 256

_FIELDS: dict[str, type] = {
    "usage": bytes,
    "ucid": CID,
    "contract": str,
    "units": int,
    "total": int,
    "amount": int,
    "req": str,
    "iat": int,
}


def _bad(message: str) -> AgoraError:
    return AgoraError("receipt_invalid", f"metering receipt: {message}")


class _Countersigned:
    """What both kinds of release evidence share: the countersigned bytes (`raw`) and the provider-signed
    part inside them (`_signed`: a usage receipt or a metering record), the escrow's contract and the
    requester who countersigned."""

    raw: bytes
    contract: str
    requester: str

    @property
    def _signed(self) -> UsageReceipt | MeteringRecord:
        raise NotImplementedError

    @property
    def provider(self) -> str:
        return self._signed.provider

    @property
    def cid(self) -> CID:
        """Names exactly the countersigned bytes (what a release entry cites)."""
        return CID.of(self.raw)

    @property
    def evidence_cid(self) -> CID:
        """The provider-signed part (the usage receipt or the metering record)."""
        return self._signed.cid


@dataclass(frozen=True)
class MeteringReceipt(_Countersigned):
    """A usage receipt (`usage`, provider-signed) countersigned by its requester for one contract."""

    usage: UsageReceipt
    contract: str
    units: int  # delivered
    total: int  # contracted
    amount: int  # minor units the requester accepts to pay
    requester: str
    iat: int
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def _signed(self) -> UsageReceipt:
        return self.usage

    @property
    def usage_cid(self) -> CID:
        return self.usage.cid

    @property
    def complete(self) -> bool:
        return self.units >= self.total

    @property
    def memo(self) -> str:
        return f"{self.units}/{self.total} units delivered"

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": METERING_TAG,
            "cid": str(self.cid),
            "usage_cid": str(self.usage_cid),
            "contract": self.contract,
            "provider": self.provider,
            "requester": self.requester,
            "units": self.units,
            "total": self.total,
            "amount": self.amount,
            "iat": self.iat,
        }


def countersign(
    keypair: Keypair, usage: UsageReceipt, *, contract: str, units: int, total: int, amount: int, iat: int
) -> bytes:
    """Countersign `usage` as its requester `keypair`: accept `amount` for `units` of `total` delivered.

    Refuses (`invalid_argument`) to sign what `open_metering` would reject: a receipt for another
    requester, units outside 0..total, a negative amount, an empty contract id."""
    _check_signable(keypair, usage, "usage receipt")
    _check_terms(contract, units, total, amount, err=lambda m: AgoraError("invalid_argument", m))
    payload = {
        "usage": usage.raw,
        "ucid": usage.cid,
        "contract": contract,
        "units": int(units),
        "total": int(total),
        "amount": int(amount),
        "req": keypair.did,
        "iat": int(iat),
    }
    return seal_envelope(keypair, METERING_TAG, payload)


def _check_signable(keypair: Keypair, signed: UsageReceipt | MeteringRecord, what: str) -> None:
    """`invalid_argument` unless `keypair` is the requester `signed` names and `signed` has its signed bytes."""
    if keypair.did != signed.requester:
        raise AgoraError("invalid_argument", f"the {what} is for requester {signed.requester}, not {keypair.did}")
    if not signed.raw:
        raise AgoraError("invalid_argument", f"countersign a {what} that was opened or issued (it has no bytes)")


def _check_terms(contract: Any, units: Any, total: Any, amount: Any, *, err: Any) -> None:
    if not isinstance(contract, str) or not contract or len(contract) > MAX_CONTRACT_ID:
        raise err(f"the contract id must be 1..{MAX_CONTRACT_ID} characters")
    for name, value in (("units", units), ("total", total), ("amount", amount)):
        if type(value) is not int or value < 0 or value > 2**62:
            raise err(f"{name} must be a non-negative integer, got {value!r}")
    if total < 1 or units > total:
        raise err(f"units delivered ({units}) must be within 0..total, and total ({total}) at least 1")


def open_metering(
    raw: bytes,
    *,
    contract: str | None = None,
    payer: str | None = None,
    payee: str | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE,
) -> MeteringReceipt:
    """Decode and verify a metering receipt; with `contract`/`payer`/`payee`, also check it is for that
    contract and those parties (payer = the requester who countersigned, payee = the provider who
    signed the usage). Every failure is `receipt_invalid` naming the check."""
    raw, env = _envelope(raw, max_bytes)
    return _open_metering(env, raw, max_bytes, contract=contract, payer=payer, payee=payee)


def _open_metering(
    env: Envelope, raw: bytes, max_bytes: int, *, contract: str | None, payer: str | None, payee: str | None
) -> MeteringReceipt:
    if env.type_tag != METERING_TAG:
        raise _bad(f"type tag is {env.type_tag[:60]!r}, not {METERING_TAG}")
    p = _payload(env, _FIELDS)
    _check_terms(p["contract"], p["units"], p["total"], p["amount"], err=_bad)
    _verify_countersignature(env, p["req"])
    try:
        usage = UsageReceipt.open(p["usage"], max_bytes=max_bytes)
    except AgoraError as exc:
        raise _bad(f"the provider's usage receipt is invalid ({exc.message})") from None
    if usage.cid != p["ucid"]:
        raise _bad("the countersigned usage CID does not name the enclosed usage receipt")
    if usage.requester != p["req"]:
        raise _bad(f"countersigned by {p['req']}, but the usage receipt is for requester {usage.requester}")
    receipt = MeteringReceipt(
        usage=usage,
        contract=p["contract"],
        units=p["units"],
        total=p["total"],
        amount=p["amount"],
        requester=p["req"],
        iat=p["iat"],
        raw=raw,
    )
    return _check_parties(receipt, "usage receipt", contract=contract, payer=payer, payee=payee)


def _envelope(raw: Any, max_bytes: int) -> tuple[bytes, Envelope]:
    """The countersigned bytes, decoded (not yet verified): `receipt_invalid` when they are not an envelope."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise _bad(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    try:
        check_size(raw, max_bytes)
        return raw, open_envelope(raw)
    except AgoraError as exc:
        raise _bad(f"undecodable: {exc.message}") from None


def _payload(env: Envelope, fields: dict[str, type]) -> dict[str, Any]:
    """The envelope's payload, with exactly `fields`, each of its type (a bool is no int)."""
    p = env.payload
    if not isinstance(p, dict) or set(p) != set(fields):
        raise _bad(f"fields must be exactly {sorted(fields)}")
    for key, kind in fields.items():
        value = p[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise _bad(f"field {key!r} has the wrong type ({type(value).__name__})")
    return p


def _verify_countersignature(env: Envelope, requester: str) -> None:
    try:
        verified = env.verify(requester)
    except AgoraError:
        verified = False
    if not verified:
        raise _bad("the requester's countersignature does not verify")


_Ev = TypeVar("_Ev", bound=_Countersigned)


def _check_parties(ev: _Ev, signed: str, *, contract: str | None, payer: str | None, payee: str | None) -> _Ev:
    """The evidence is for `contract` and its parties (payer = the requester, payee = the provider who signed
    the `signed` part), where they are given."""
    if contract is not None and ev.contract != contract:
        raise _bad(f"it is for contract {ev.contract[:80]!r}, not {contract[:80]!r}")
    if payer is not None and ev.requester != payer:
        raise _bad(f"countersigned by {ev.requester}, but the contract's payer is {payer}")
    if payee is not None and ev.provider != payee:
        raise _bad(f"the {signed} is signed by provider {ev.provider}, but the contract's payee is {payee}")
    return ev


def inference_contract(quote: CID | str) -> str:
    """The escrow of one inference request: named by its quote (one quote, one request, one escrow)."""
    return f"inference:{quote}"


_INFER_FIELDS: dict[str, type] = {"meter": bytes, "mcid": CID, "contract": str, "amount": int, "req": str, "iat": int}


@dataclass(frozen=True)
class InferenceSettlement(_Countersigned):
    """A provider's metering record (`record`, provider-signed) countersigned by its requester: accepts to pay
    `amount` (exactly the record's price) out of the request's escrow `contract`."""

    record: MeteringRecord
    contract: str
    amount: int
    requester: str
    iat: int
    raw: bytes = field(default=b"", compare=False, repr=False)

    @property
    def _signed(self) -> MeteringRecord:
        return self.record

    @property
    def memo(self) -> str:
        r = self.record
        return f"inference {r.model}: {r.tokens_in} in, {r.tokens_out} out" + (" (partial)" if r.partial else "")


Release = MeteringReceipt | InferenceSettlement


def countersign_record(keypair: Keypair, record: MeteringRecord, *, iat: int) -> bytes:
    """Countersign a verified inference metering record as its requester: release its price from the
    request's escrow (`inference_contract(record.quote)`). Refuses (`invalid_argument`) a record for another
    requester or one without its signed bytes."""
    _check_signable(keypair, record, "metering record")
    payload = {
        "meter": record.raw,
        "mcid": record.cid,
        "contract": inference_contract(record.quote),
        "amount": int(record.price),
        "req": keypair.did,
        "iat": int(iat),
    }
    return seal_envelope(keypair, INFERENCE_SETTLE_TAG, payload)


def _open_inference(env: Envelope, raw: bytes, max_bytes: int) -> InferenceSettlement:
    p = _payload(env, _INFER_FIELDS)
    _verify_countersignature(env, p["req"])
    try:
        record = MeteringRecord.open(p["meter"], max_bytes=max_bytes)
    except AgoraError as exc:
        raise _bad(f"the provider's inference record is invalid ({exc.message})") from None
    if record.cid != p["mcid"]:
        raise _bad("the countersigned record CID does not name the enclosed record")
    if record.requester != p["req"]:
        raise _bad(f"countersigned by {p['req']}, but the record is for requester {record.requester}")
    if p["contract"] != inference_contract(record.quote):
        raise _bad(f"it names escrow {p['contract'][:80]!r}, but the record is for {inference_contract(record.quote)}")
    if p["amount"] != record.price:
        raise _bad(f"accepts {p['amount']}, but the provider's record prices the request at {record.price}")
    return InferenceSettlement(record, p["contract"], p["amount"], p["req"], p["iat"], raw=raw)


def open_release(
    raw: bytes,
    *,
    contract: str | None = None,
    payer: str | None = None,
    payee: str | None = None,
    max_bytes: int = DEFAULT_MAX_MESSAGE,
) -> Release:
    """What an escrow is released against, either kind: a job's metering receipt (`open_metering`) or an
    inference record countersigned by its requester. Both signatures, the parties (payer = requester,
    payee = provider) and the contract are checked; every failure is `receipt_invalid`."""
    raw, env = _envelope(raw, max_bytes)
    if env.type_tag != INFERENCE_SETTLE_TAG:
        return _open_metering(env, raw, max_bytes, contract=contract, payer=payer, payee=payee)
    ev = _open_inference(env, raw, max_bytes)
    return _check_parties(ev, "record", contract=contract, payer=payer, payee=payee)


__all__ = [
    "INFERENCE_SETTLE_TAG",
    "MAX_CONTRACT_ID",
    "METERING_TAG",
    "InferenceSettlement",
    "MeteringReceipt",
    "Release",
    "countersign",
    "countersign_record",
    "inference_contract",
    "open_metering",
    "open_release",
]
