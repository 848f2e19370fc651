"""The federated-learning protocol's signed messages, imported by both the data provider and the model owner.

    agora/fl/dataad@1.0.0    DataAd          signed by the data provider: its data-set offers (descriptions
                                             and content hashes, never paths), published in the market index
    agora/fl/update@1.0.0    UpdateReceipt   signed by the data provider: one round's update, named by the
                                             sha256 of its bytes, with the example count and local metrics

A `DataAd` is the data counterpart of the `CapacityAd`: per-provider `seq` (replays refused with
`check_newer_data`), `iat` + `ttl`, the same sealing (`agora.wire.market._Signed`), its own type tag so a
capacity ad's signature can never pass as a data ad's. An `UpdateReceipt` is the metering receipt of one
delivered update: the escrow of the contract it names is released for it (once: the contract's timeline
refuses a second release of the same round), and only after the owner checked the bytes hash to `update`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from agora.errors import AgoraError
from agora.identity import Keypair
from agora.models.dataset import DatasetOffer, dataset_offer_from_dict
from agora.wire.market import _Fields, _Signed
from agora.wire.messages import MESSAGE_TYPES

DATA_AD_TAG = "agora/fl/dataad@1.0.0"
UPDATE_TAG = "agora/fl/update@1.0.0"
MAX_DATA_OFFERS = 64
MAX_METRICS = 16

MESSAGE_TYPES.update(
    {
        DATA_AD_TAG: "data ad: a data provider's signed data-set offers (read from the hub's market index)",
        UPDATE_TAG: "update receipt: a data provider's signed delivery of one training round's update",
    }
)


def update_hash(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class DataAd(_Signed):
    TAG: ClassVar[str] = DATA_AD_TAG
    SIGNER: ClassVar[str] = "prov"
    KEYS: ClassVar[tuple[str, ...]] = ("prov", "seq", "iat", "ttl", "offers")
    CODE: ClassVar[str] = "ad_invalid"
    WHAT: ClassVar[str] = "data ad"

    provider: str
    seq: int
    iat: int
    ttl_s: int
    offers: tuple[DatasetOffer, ...]

    @classmethod
    def issue(cls, keypair: Keypair, *, seq: int, iat: int, ttl_s: int, offers: Sequence[DatasetOffer]) -> DataAd:
        return cls(keypair.did, seq, iat, ttl_s, tuple(offers))._sealed(keypair)

    @property
    def expires_at(self) -> int:
        return self.iat + self.ttl_s

    def _payload(self) -> dict[str, Any]:
        return {
            "prov": self.provider,
            "seq": self.seq,
            "iat": self.iat,
            "ttl": self.ttl_s,
            "offers": [o.to_dict() for o in self.offers],
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> DataAd:
        prov = f.did("prov")
        raw = f.p["offers"]
        if not isinstance(raw, list) or len(raw) > MAX_DATA_OFFERS:
            raise f.bad("offers", f"a list of at most {MAX_DATA_OFFERS} data-set offers")
        offers: list[DatasetOffer] = []
        for item in raw:
            try:
                offer = dataset_offer_from_dict(item)
            except AgoraError as exc:
                raise f.bad("offers", f"data-set offers ({exc.message[:120]})") from None
            if offer.provider != prov:
                raise f.bad("offers", "offers of the signing provider")
            offers.append(offer)
        return cls(prov, f.int_("seq"), f.int_("iat"), f.int_("ttl", low=1), tuple(offers))


def check_newer_data(ad: DataAd, last: DataAd | None) -> bool:
    """True if `ad` replaces `last`; False if it is the same; `ad_replayed` if older or conflicting."""
    if last is None or ad.seq > last.seq:
        return True
    if ad.seq == last.seq and ad.raw == last.raw:
        return False
    raise AgoraError("ad_replayed", f"data ad seq {ad.seq} of {ad.provider} after seq {last.seq}")


@dataclass(frozen=True)
class UpdateReceipt(_Signed):
    TAG: ClassVar[str] = UPDATE_TAG
    SIGNER: ClassVar[str] = "prov"
    KEYS: ClassVar[tuple[str, ...]] = ("prov", "owner", "run", "round", "contract", "update", "n", "metrics", "ms")
    WHAT: ClassVar[str] = "update receipt"

    provider: str
    owner: str
    run_id: str
    round: int
    contract_id: str
    update: str  # sha256:<hex> of the update's bytes
    examples: int
    metrics: Mapping[str, float]
    train_ms: int

    @classmethod
    def issue(
        cls,
        keypair: Keypair,
        *,
        owner: str,
        run_id: str,
        round: int,
        contract_id: str,
        update: str,
        examples: int,
        metrics: Mapping[str, float],
        train_ms: int,
    ) -> UpdateReceipt:
        msg = cls(keypair.did, owner, run_id, round, contract_id, update, examples, dict(metrics), train_ms)
        return msg._sealed(keypair)

    def _payload(self) -> dict[str, Any]:
        return {
            "prov": self.provider,
            "owner": self.owner,
            "run": self.run_id,
            "round": self.round,
            "contract": self.contract_id,
            "update": self.update,
            "n": self.examples,
            "metrics": {k: float(v) for k, v in sorted(self.metrics.items())},
            "ms": self.train_ms,
        }

    @classmethod
    def _from_payload(cls, f: _Fields) -> UpdateReceipt:
        update = f.str_("update", max_len=80)
        if not update.startswith("sha256:") or len(update) != 71:
            raise f.bad("update", "sha256: and 64 hex digits")
        metrics = f.p["metrics"]
        if (
            not isinstance(metrics, dict)
            or len(metrics) > MAX_METRICS
            or not all(isinstance(k, str) and isinstance(v, float) for k, v in metrics.items())
        ):
            raise f.bad("metrics", f"at most {MAX_METRICS} named numbers")
        return cls(
            f.did("prov"),
            f.did("owner"),
            f.str_("run", max_len=128),
            f.int_("round", low=1),
            f.str_("contract", max_len=128),
            update,
            f.int_("n", low=1),
            dict(metrics),
            f.int_("ms"),
        )

    def names(self, data: bytes) -> bool:
        """Whether the update bytes received are the ones this receipt was signed for."""
        return update_hash(data) == self.update


__all__ = ["DATA_AD_TAG", "UPDATE_TAG", "DataAd", "UpdateReceipt", "check_newer_data", "update_hash"]
