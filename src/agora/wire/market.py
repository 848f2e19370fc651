"""The market protocol's messages: capacity ads, bid requests, bids, declines, awards, commits, releases.

Each message is a sealed envelope (`seal_envelope`) under its own versioned type tag, so a signature
made for one kind (or for an RPC receipt, an announcement, a UCAN token) can never pass as another:

    agora/market/ad@1.0.0        CapacityAd   signed by the provider (it travels through the untrusted hub)
    agora/market/bidreq@1.0.0    BidRequest   signed by the requester
    agora/market/bid@1.0.0       Bid          signed by the provider (a firm price the requester can hold)
    agora/market/decline@1.0.0   Decline      signed by the provider (coded reasons)
    agora/market/award@1.0.0     Award        signed by the requester (names the bid it accepts by CID)
    agora/market/commit@1.0.0    Commit       signed by the provider (capacity reserved until start_by)
    agora/market/release@1.0.0   Release      signed by either party (the reservation is given back)

`Cls.issue(keypair, ...)` signs; `Cls.open(raw, expected_signer=...)` decodes, checks every field's type
and verifies the signature over the exact bytes received. A bad ad is `ad_invalid`; any other bad market
message is `market_message_invalid`. Messages cite each other by the CID of the signed bytes (`.cid`),
so an award names exactly one bid and a commit exactly one award.

Replays: an ad carries a per-provider sequence number `seq` and its issue time `iat`; `check_newer`
refuses (`ad_replayed`) an ad whose seq is below the last one seen, or equal to it with other bytes
(equivocation). Staleness (`iat + ttl_s`) is a matching verdict (`stale_ad`), not a decode error.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.models.capability import Capability
from agora.models.offer import ResourceOffer
from agora.ucan import Delegation, open_envelope, seal_envelope
from agora.wire.messages import DEFAULT_MAX_MESSAGE, MESSAGE_TYPES, check_size
from agora.wire.model_offer import ModelOffer, models_from_wire

AD_TAG = "agora/market/ad@1.0.0"
BID_REQUEST_TAG = "agora/market/bidreq@1.0.0"
BID_TAG = "agora/market/bid@1.0.0"
DECLINE_TAG = "agora/market/decline@1.0.0"
AWARD_TAG = "agora/market/award@1.0.0"
COMMIT_TAG = "agora/market/commit@1.0.0"
RELEASE_TAG = "agora/market/release@1.0.0"
DECLINE_CODES = ("busy", "policy", "price", "draining", "capacity", "expired")
MAX_EXECUTORS = 32
MAX_REASONS = 16
MAX_TEXT = 512
_NOT_IN_FREE = {"executors", "price", "trust", "latency_ms", "benchmark_score"}

MESSAGE_TYPES.update(
    {
        AD_TAG: "capacity ad: a provider's signed free capacity, offer and prices (read from the hub index)",
        BID_REQUEST_TAG: "bid request: a requester asks one provider for a firm price for one job",
        BID_TAG: "bid: a provider's firm price for one job, valid until a time",
        DECLINE_TAG: "decline: a provider will not bid, with coded reasons",
        AWARD_TAG: "award: a requester accepts one bid (named by CID)",
        COMMIT_TAG: "commit: a provider reserved the capacity for an award until start_by",
        RELEASE_TAG: "release: a party gives an award's reservation back",
    }
)

T = TypeVar("T", bound="_Signed")


class _Fields:
    """Typed reads of one payload; the first bad field raises `code` naming the field."""

    def __init__(self, payload: dict[str, Any], code: str, what: str) -> None:
        self.p, self.code, self.what = payload, code, what

    def bad(self, key: str, expected: str) -> AgoraError:
        return AgoraError(self.code, f"{self.what}: field {key!r} must be {expected}", details={"field": key})

    def str_(self, key: str, *, max_len: int = 256) -> str:
        v = self.p[key]
        if not isinstance(v, str) or not v or len(v) > max_len:
            raise self.bad(key, f"a non-empty string of at most {max_len} characters")
        return v

    def did(self, key: str) -> str:
        v = self.str_(key)
        if not v.startswith("did:"):
            raise self.bad(key, "a DID")
        return v

    def int_(self, key: str, *, low: int = 0) -> int:
        v = self.p[key]
        if type(v) is not int or v < low:
            raise self.bad(key, f"an integer >= {low}")
        return v

    def opt_int(self, key: str, *, low: int = 0) -> int | None:
        return None if self.p[key] is None else self.int_(key, low=low)

    def cid(self, key: str) -> CID:
        v = self.p[key]
        if not isinstance(v, CID):
            raise self.bad(key, "a CID")
        return v

    def capability(self, key: str) -> Capability:
        v = self.p[key]
        try:
            return Capability.from_dict(v)
        except AgoraError as exc:
            raise self.bad(key, f"a capability ({exc.message})") from None
        except TypeError:
            raise self.bad(key, "a capability") from None


@dataclass(frozen=True)
class _Signed:
    """Common sealing and opening; subclasses declare TAG, the signer's payload key and the schema."""

    TAG: ClassVar[str]
    SIGNER: ClassVar[str]
    KEYS: ClassVar[tuple[str, ...]]
    OPTIONAL: ClassVar[tuple[str, ...]] = ()  # keys a payload may leave out (absent = the default)
    CODE: ClassVar[str] = "market_message_invalid"
    WHAT: ClassVar[str] = "market message"

    raw: bytes = field(default=b"", compare=False, repr=False, kw_only=True)

    @property
    def cid(self) -> CID:
        """Names exactly the signed bytes (what the next message of the exchange cites)."""
        return CID.of(self.raw)

    @property
    def signer(self) -> str:
        return str(self._payload()[self.SIGNER])

    def _payload(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def _from_payload(cls: type[T], f: _Fields) -> T:
        raise NotImplementedError

    def _sealed(self: T, keypair: Keypair) -> T:
        if keypair.did != self.signer:
            raise AgoraError("invalid_argument", f"a {cls_name(self)} is signed by its {self.SIGNER} ({self.signer})")
        return type(self).open(seal_envelope(keypair, self.TAG, self._payload()), expected_signer=keypair.did)

    @classmethod
    def open(
        cls: type[T], raw: bytes, *, expected_signer: str | None = None, max_bytes: int = DEFAULT_MAX_MESSAGE
    ) -> T:
        """Decode, shape-check and verify; anything that does not verify raises `CODE`."""
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise AgoraError(cls.CODE, f"{cls.WHAT}: expected bytes, got {type(raw).__name__}")
        raw = bytes(raw)
        try:
            check_size(raw, max_bytes)
            env = open_envelope(raw)
        except AgoraError as exc:
            raise AgoraError(cls.CODE, f"{cls.WHAT}: undecodable ({exc.message})") from None
        if env.type_tag != cls.TAG:
            raise AgoraError(cls.CODE, f"{cls.WHAT}: type tag is {env.type_tag[:60]!r}, not {cls.TAG}")
        p = env.payload
        if not isinstance(p, dict) or not set(cls.KEYS) <= set(p) <= set(cls.KEYS) | set(cls.OPTIONAL):
            raise AgoraError(
                cls.CODE, f"{cls.WHAT}: fields must be exactly {sorted(cls.KEYS)} (+ {list(cls.OPTIONAL)})"
            )
        fields = _Fields(p, cls.CODE, cls.WHAT)
        signer = fields.did(cls.SIGNER)
        if expected_signer is not None and signer != expected_signer:
            raise AgoraError(cls.CODE, f"{cls.WHAT}: signed by {signer}, expected {expected_signer}")
        msg = cls._from_payload(fields)
        if not env.verify(signer):
            raise AgoraError(cls.CODE, f"{cls.WHAT}: the signature does not verify against {signer}")
        object.__setattr__(msg, "raw", raw)
        return msg


def cls_name(obj: object) -> str:
    return type(obj).__name__


@dataclass(frozen=True)
class ExecutorState:
    """One engine as the provider sees it now: available, or not with the reason (e.g. no engine answers)."""

    available: bool
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.available, "why": self.reason}


@dataclass(frozen=True)
class CapacityAd(_Signed):
    """A provider's signed capacity ad: free capacity now, its offer (id, prices, terms), benchmark score,
    executors with their availability, labels and location (in `free`), software version."""

    TAG: ClassVar[str] = AD_TAG
    SIGNER: ClassVar[str] = "prov"
    KEYS: ClassVar[tuple[str, ...]] = ("prov", "seq", "iat", "ttl", "offer", "free", "execs", "bench", "ver")
    OPTIONAL: ClassVar[tuple[str, ...]] = ("models",)  # model offers (inference), only when there are some
    CODE: ClassVar[str] = "ad_invalid"
    WHAT: ClassVar[str] = "capacity ad"

    provider: str
    seq: int
    iat: int
    ttl_s: int
    offer: ResourceOffer
    free: Capability
    executors: Mapping[str, ExecutorState]
    benchmark_score: float | None
    version: str
    models: tuple[ModelOffer, ...] = ()

    @classmethod
    def issue(
        cls,
        keypair: Keypair,
        *,
        seq: int,
        iat: int,
        ttl_s: int,
        offer: ResourceOffer,
        free: Capability,
        executors: Mapping[str, ExecutorState],
        benchmark_score: float | None,
        version: str,
        models: Sequence[ModelOffer] = (),
    ) -> CapacityAd:
        ad = cls(keypair.did, seq, iat, ttl_s, offer, free, dict(executors), benchmark_score, version, tuple(models))
        return ad._sealed(keypair)

    @property
    def expires_at(self) -> int:
        return self.iat + self.ttl_s

    @property
    def available_executors(self) -> frozenset[str]:
        return frozenset(name for name, state in self.executors.items() if state.available)

    def _payload(self) -> dict[str, Any]:
        free = self.free.to_dict()
        free.pop("executors", None)  # executors travel with their availability in `execs`
        models = {"models": [m.to_dict() for m in self.models]} if self.models else {}
        return models | {
            "prov": self.provider,
            "seq": self.seq,
            "iat": self.iat,
            "ttl": self.ttl_s,
            "offer": self.offer.to_dict(),
            "free": free,
            "execs": {k: v.to_dict() for k, v in sorted(self.executors.items())},
            "bench": self.benchmark_score,
            "ver": self.version,
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> CapacityAd:
        p = f.p
        execs = p["execs"]
        if not isinstance(execs, dict) or len(execs) > MAX_EXECUTORS:
            raise f.bad("execs", f"a map of at most {MAX_EXECUTORS} engines")
        executors: dict[str, ExecutorState] = {}
        for name, state in execs.items():
            if (
                not isinstance(name, str)
                or not isinstance(state, dict)
                or set(state) != {"ok", "why"}
                or not isinstance(state["ok"], bool)
                or not (state["why"] is None or (isinstance(state["why"], str) and len(state["why"]) <= MAX_TEXT))
            ):
                raise f.bad("execs", "engine -> {ok: bool, why: string or null}")
            executors[name] = ExecutorState(state["ok"], state["why"])
        if isinstance(p["free"], dict) and set(p["free"]) & _NOT_IN_FREE:
            # executors travel in execs with their availability; price, trust, latency and benchmark are not
            # the provider's to claim here (prices are in the offer, the others are the requester's view)
            raise f.bad("free", f"a capability without {', '.join(sorted(_NOT_IN_FREE))}")
        free = f.capability("free")
        free = Capability.from_dict(
            {**free.to_dict(), "executors": sorted(n for n, s in executors.items() if s.available)}
        )
        try:
            offer = ResourceOffer.from_dict(p["offer"])
        except AgoraError as exc:
            raise f.bad("offer", f"a valid resource offer ({exc.message})") from None
        provider = f.did("prov")
        if offer.provider != provider:
            raise f.bad("offer", f"an offer of the ad's own provider ({provider}), not {offer.provider}")
        bench = p["bench"]
        if bench is not None and (
            isinstance(bench, bool) or not isinstance(bench, float | int) or not math.isfinite(bench) or bench < 0
        ):
            raise f.bad("bench", "a non-negative number or null")
        return cls(
            provider,
            f.int_("seq"),
            f.int_("iat"),
            f.int_("ttl", low=1),
            offer,
            free,
            executors,
            None if bench is None else float(bench),
            f.str_("ver", max_len=64),
            _ad_models(f, p.get("models", [])),
        )


def _ad_models(f: _Fields, value: Any) -> tuple[ModelOffer, ...]:
    try:
        return models_from_wire(value)
    except AgoraError as exc:
        raise f.bad("models", f"model offers ({exc.message})") from None


def check_newer(ad: CapacityAd, last: CapacityAd | None) -> bool:
    """Whether `ad` should replace `last` (the newest seen from the same provider).

    Returns False for the very same ad again (a harmless duplicate); raises `ad_replayed` for an older
    sequence number, or for the same number with other bytes (the provider signed two different ads
    for one seq, or a hub tries to pass off one ad as another).
    """
    if last is None:
        return True
    if ad.provider != last.provider:
        raise AgoraError("invalid_argument", "check_newer compares ads of one provider")
    if ad.seq > last.seq:
        return True
    if ad.seq == last.seq and ad.raw == last.raw:
        return False
    what = "older than" if ad.seq < last.seq else "conflicting with"
    raise AgoraError(
        "ad_replayed",
        f"ad seq {ad.seq} from {ad.provider} is {what} the last seen (seq {last.seq})",
        details={"provider": ad.provider, "seq": ad.seq, "last_seq": last.seq},
    )


@dataclass(frozen=True)
class BidRequest(_Signed):
    TAG: ClassVar[str] = BID_REQUEST_TAG
    SIGNER: ClassVar[str] = "req"
    KEYS: ClassVar[tuple[str, ...]] = (
        "req",
        "prov",
        "rid",
        "job",
        "task",
        "offer",
        "need",
        "engine",
        "dur",
        "max",
        "by",
        "iat",
    )
    WHAT: ClassVar[str] = "bid request"

    requester: str
    provider: str
    request_id: str
    job_id: str
    task: str
    offer_id: str
    need: Capability
    engine: str
    duration_s: int
    max_price: int | None
    respond_by: int
    iat: int

    @classmethod
    def issue(cls, keypair: Keypair, **kw: Any) -> BidRequest:
        return cls(requester=keypair.did, **kw)._sealed(keypair)

    def _payload(self) -> dict[str, Any]:
        return {
            "req": self.requester,
            "prov": self.provider,
            "rid": self.request_id,
            "job": self.job_id,
            "task": self.task,
            "offer": self.offer_id,
            "need": self.need.to_dict(),
            "engine": self.engine,
            "dur": self.duration_s,
            "max": self.max_price,
            "by": self.respond_by,
            "iat": self.iat,
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> BidRequest:
        return cls(
            f.did("req"),
            f.did("prov"),
            f.str_("rid", max_len=128),
            f.str_("job"),
            f.str_("task"),
            f.str_("offer", max_len=128),
            f.capability("need"),
            f.str_("engine", max_len=32),
            f.int_("dur", low=1),
            f.opt_int("max"),
            f.int_("by"),
            f.int_("iat"),
        )


@dataclass(frozen=True)
class Bid(_Signed):
    """A firm price for one bid request, valid until `valid_until`, optionally carrying the provider's UCAN
    delegation to the requester scoped to this one job (raw bytes; `delegation_token` decodes it)."""

    TAG: ClassVar[str] = BID_TAG
    SIGNER: ClassVar[str] = "prov"
    KEYS: ClassVar[tuple[str, ...]] = ("prov", "req", "request", "rid", "job", "offer", "price", "until", "dlg", "iat")
    WHAT: ClassVar[str] = "bid"

    provider: str
    requester: str
    request: CID
    request_id: str
    job_id: str
    offer_id: str
    price: int
    valid_until: int
    delegation: bytes | None
    iat: int

    @classmethod
    def issue(
        cls,
        keypair: Keypair,
        request: BidRequest,
        *,
        price: int,
        valid_until: int,
        iat: int,
        delegation: bytes | None = None,
    ) -> Bid:
        bid = cls(
            keypair.did,
            request.requester,
            request.cid,
            request.request_id,
            request.job_id,
            request.offer_id,
            price,
            valid_until,
            delegation,
            iat,
        )
        check_bid(bid, request, now=iat)  # a provider never signs a bid over the job's max_price
        return bid._sealed(keypair)

    def delegation_token(self) -> Delegation | None:
        return None if self.delegation is None else Delegation.decode(self.delegation)

    def _payload(self) -> dict[str, Any]:
        return {
            "prov": self.provider,
            "req": self.requester,
            "request": self.request,
            "rid": self.request_id,
            "job": self.job_id,
            "offer": self.offer_id,
            "price": self.price,
            "until": self.valid_until,
            "dlg": self.delegation,
            "iat": self.iat,
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> Bid:
        dlg = f.p["dlg"]
        if dlg is not None:
            if not isinstance(dlg, bytes):
                raise f.bad("dlg", "the raw bytes of a UCAN delegation, or null")
            try:
                token = Delegation.decode(dlg)
            except AgoraError as exc:
                raise f.bad("dlg", f"a UCAN delegation ({exc.message})") from None
            if token.iss != f.p["prov"] or token.aud != f.p["req"]:
                raise f.bad("dlg", "a delegation from the bidding provider to the requester")
        return cls(
            f.did("prov"),
            f.did("req"),
            f.cid("request"),
            f.str_("rid", max_len=128),
            f.str_("job"),
            f.str_("offer", max_len=128),
            f.int_("price"),
            f.int_("until"),
            dlg,
            f.int_("iat"),
        )


def check_bid(bid: Bid, request: BidRequest, *, now: float) -> None:
    """A bid answers this request, from its provider, within max_price, and is still valid at `now`."""
    if bid.request != request.cid or bid.request_id != request.request_id or bid.provider != request.provider:
        raise AgoraError("market_message_invalid", "the bid does not answer this bid request")
    if request.max_price is not None and bid.price > request.max_price:
        raise AgoraError(
            "bid_over_max_price",
            f"bid of {bid.price:,} is over the job's max_price of {request.max_price:,}",
            details={"price": bid.price, "max_price": request.max_price},
        )
    if now > bid.valid_until:
        raise AgoraError("bid_expired", f"the bid was valid until {bid.valid_until}, now is {int(now)}")


@dataclass(frozen=True)
class DeclineReason:
    code: str  # one of DECLINE_CODES
    text: str

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "text": self.text}


@dataclass(frozen=True)
class Decline(_Signed):
    TAG: ClassVar[str] = DECLINE_TAG
    SIGNER: ClassVar[str] = "prov"
    KEYS: ClassVar[tuple[str, ...]] = ("prov", "request", "rid", "reasons", "iat")
    WHAT: ClassVar[str] = "decline"

    provider: str
    request: CID
    request_id: str
    reasons: tuple[DeclineReason, ...]
    iat: int

    @classmethod
    def issue(cls, keypair: Keypair, request: BidRequest, reasons: Sequence[DeclineReason], *, iat: int) -> Decline:
        return cls(keypair.did, request.cid, request.request_id, tuple(reasons), iat)._sealed(keypair)

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def _payload(self) -> dict[str, Any]:
        return {
            "prov": self.provider,
            "request": self.request,
            "rid": self.request_id,
            "reasons": [r.to_dict() for r in self.reasons],
            "iat": self.iat,
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> Decline:
        raw = f.p["reasons"]
        if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_REASONS:
            raise f.bad("reasons", f"a list of 1 to {MAX_REASONS} reasons")
        reasons = []
        for r in raw:
            if (
                not isinstance(r, dict)
                or set(r) != {"code", "text"}
                or r["code"] not in DECLINE_CODES
                or not isinstance(r["text"], str)
                or len(r["text"]) > MAX_TEXT
            ):
                raise f.bad("reasons", f"{{code, text}} with code one of {', '.join(DECLINE_CODES)}")
            reasons.append(DeclineReason(r["code"], r["text"]))
        return cls(f.did("prov"), f.cid("request"), f.str_("rid", max_len=128), tuple(reasons), f.int_("iat"))


@dataclass(frozen=True)
class Award(_Signed):
    TAG: ClassVar[str] = AWARD_TAG
    SIGNER: ClassVar[str] = "req"
    KEYS: ClassVar[tuple[str, ...]] = ("req", "prov", "bid", "rid", "job", "price", "by", "iat")
    WHAT: ClassVar[str] = "award"

    requester: str
    provider: str
    bid: CID
    request_id: str
    job_id: str
    price: int
    commit_by: int
    iat: int

    @classmethod
    def issue(cls, keypair: Keypair, bid: Bid, *, commit_by: int, iat: int) -> Award:
        if bid.requester != keypair.did:
            raise AgoraError("invalid_argument", "only the requester the bid answers can award it")
        if iat > bid.valid_until:
            raise AgoraError("bid_expired", f"the bid was valid until {bid.valid_until}, now is {iat}")
        award = cls(keypair.did, bid.provider, bid.cid, bid.request_id, bid.job_id, bid.price, commit_by, iat)
        return award._sealed(keypair)

    def _payload(self) -> dict[str, Any]:
        return {
            "req": self.requester,
            "prov": self.provider,
            "bid": self.bid,
            "rid": self.request_id,
            "job": self.job_id,
            "price": self.price,
            "by": self.commit_by,
            "iat": self.iat,
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> Award:
        return cls(
            f.did("req"),
            f.did("prov"),
            f.cid("bid"),
            f.str_("rid", max_len=128),
            f.str_("job"),
            f.int_("price"),
            f.int_("by"),
            f.int_("iat"),
        )


def check_award(award: Award, bid: Bid, *, now: float) -> None:
    """The provider's check before committing: the award names its own bid, at its price, in time."""
    if award.bid != bid.cid or award.provider != bid.provider or award.requester != bid.requester:
        raise AgoraError("market_message_invalid", "the award does not name this bid")
    if award.price != bid.price or award.request_id != bid.request_id or award.job_id != bid.job_id:
        raise AgoraError("market_message_invalid", "the award changes the bid's price, request or job")
    if now > bid.valid_until or now > award.commit_by:
        raise AgoraError("bid_expired", f"the bid or award expired (now {int(now)})")


@dataclass(frozen=True)
class Commit(_Signed):
    TAG: ClassVar[str] = COMMIT_TAG
    SIGNER: ClassVar[str] = "prov"
    KEYS: ClassVar[tuple[str, ...]] = ("prov", "award", "rid", "job", "start_by", "iat")
    WHAT: ClassVar[str] = "commit"

    provider: str
    award: CID
    request_id: str
    job_id: str
    start_by: int
    iat: int

    @classmethod
    def issue(cls, keypair: Keypair, award: Award, *, start_by: int, iat: int) -> Commit:
        return cls(keypair.did, award.cid, award.request_id, award.job_id, start_by, iat)._sealed(keypair)

    def _payload(self) -> dict[str, Any]:
        return {
            "prov": self.provider,
            "award": self.award,
            "rid": self.request_id,
            "job": self.job_id,
            "start_by": self.start_by,
            "iat": self.iat,
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> Commit:
        return cls(
            f.did("prov"), f.cid("award"), f.str_("rid", max_len=128), f.str_("job"), f.int_("start_by"), f.int_("iat")
        )


@dataclass(frozen=True)
class Release(_Signed):
    TAG: ClassVar[str] = RELEASE_TAG
    SIGNER: ClassVar[str] = "iss"
    KEYS: ClassVar[tuple[str, ...]] = ("iss", "award", "rid", "reason", "iat")
    WHAT: ClassVar[str] = "release"

    issuer: str
    award: CID
    request_id: str
    reason: str
    iat: int

    @classmethod
    def issue(cls, keypair: Keypair, award: Award, *, reason: str, iat: int) -> Release:
        if keypair.did not in (award.requester, award.provider):
            raise AgoraError("invalid_argument", "only a party to the award can release it")
        return cls(keypair.did, award.cid, award.request_id, reason, iat)._sealed(keypair)

    def _payload(self) -> dict[str, Any]:
        return {"iss": self.issuer, "award": self.award, "rid": self.request_id, "reason": self.reason, "iat": self.iat}

    @classmethod
    def _from_payload(cls, f: _Fields) -> Release:
        return cls(
            f.did("iss"), f.cid("award"), f.str_("rid", max_len=128), f.str_("reason", max_len=MAX_TEXT), f.int_("iat")
        )


MARKET_MESSAGES: dict[str, Callable[..., _Signed]] = {
    c.TAG: c.open for c in (CapacityAd, BidRequest, Bid, Decline, Award, Commit, Release)
}

__all__ = [
    "AD_TAG",
    "AWARD_TAG",
    "BID_REQUEST_TAG",
    "BID_TAG",
    "COMMIT_TAG",
    "DECLINE_CODES",
    "DECLINE_TAG",
    "MARKET_MESSAGES",
    "RELEASE_TAG",
    "Award",
    "Bid",
    "BidRequest",
    "CapacityAd",
    "Commit",
    "Decline",
    "DeclineReason",
    "ExecutorState",
    "Release",
    "check_award",
    "check_bid",
    "check_newer",
]
