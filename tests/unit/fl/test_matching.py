"""Training intents against data ads: every reason per offer with counts (data_tags_missing,
schema_mismatch, custom_code_refused, over_budget), one offer per provider, the budget kept."""

from __future__ import annotations

import pytest

from agora.errors import AgoraError
from agora.fl.matching import match_training
from agora.identity import Keypair
from agora.wire.fl import DataAd, check_newer_data

from .helpers import NOW, offer, spec


def ad(kp: Keypair, *offers_: object, seq: int = 1, ttl: int = 600) -> DataAd:
    return DataAd.issue(kp, seq=seq, iat=NOW, ttl_s=ttl, offers=list(offers_))  # type: ignore[arg-type]


def test_every_reason_is_named_with_counts() -> None:
    good, untagged, other_schema, priced = (Keypair.generate() for _ in range(4))
    ads = [
        ad(good, offer(good)),
        ad(untagged, offer(untagged, tags=["text"])),
        ad(other_schema, offer(other_schema, schema={"features": ["f0", "zz", "f2"], "label": "y"})),
        ad(priced, offer(priced, price_per_update=50)),
    ]
    d = match_training(spec(max_price_per_update=10), ads, budget=1000, now=NOW)
    assert [o.provider for o in d.chosen] == [good.did]
    assert d.counts == {"data_tags_missing": 1, "schema_mismatch": 1, "over_budget": 1}
    texts = {v.provider: v.reasons for v in d.verdicts}
    assert texts[untagged.did][0][0] == "data_tags_missing" and "digits" in texts[untagged.did][0][1]
    assert "zz" not in texts[other_schema.did][0][1] and "f1" in texts[other_schema.did][0][1]
    assert d.total_cost == 5 * 3


def test_no_offer_has_the_tags() -> None:
    kps = [Keypair.generate() for _ in range(3)]
    d = match_training(spec(data_tags=["x-ray"]), [ad(k, offer(k)) for k in kps], budget=None, now=NOW)
    assert not d.matched and d.counts["data_tags_missing"] == 3 and d.counts["too_few_providers"] == 1


def test_an_offer_refusing_custom_code() -> None:
    closed, open_ = Keypair.generate(), Keypair.generate()
    ads = [ad(closed, offer(closed)), ad(open_, offer(open_, custom_code=True))]
    custom = spec(trainer="custom", custom_code="class Client: pass\n")
    d = match_training(custom, ads, budget=None, now=NOW)
    assert [o.provider for o in d.chosen] == [open_.did]
    assert d.counts == {"custom_code_refused": 1}


def test_budget_limits_the_providers_and_min_providers_holds() -> None:
    kps = [Keypair.generate() for _ in range(3)]
    ads = [ad(k, offer(k, price_per_update=10)) for k in kps]
    d = match_training(spec(min_providers=2), ads, budget=65, now=NOW)  # 30 per provider: two fit
    assert len(d.chosen) == 2 and d.total_cost == 60 and d.counts["over_budget"] == 1
    d = match_training(spec(min_providers=3), ads, budget=65, now=NOW)
    assert not d.matched and d.counts["too_few_providers"] == 1


def test_stale_ads_and_the_owner_are_not_chosen() -> None:
    a, b = Keypair.generate(), Keypair.generate()
    d = match_training(
        spec(), [ad(a, offer(a), ttl=5), ad(b, offer(b))], budget=None, now=NOW + 10, exclude=frozenset({b.did})
    )
    assert not d.matched and d.counts["stale_ad"] == 1 and len(d.verdicts) == 1


def test_data_ads_are_signed_and_replays_refused() -> None:
    a, b = Keypair.generate(), Keypair.generate()
    first = ad(a, offer(a))
    assert DataAd.open(first.raw).offers == first.offers
    forged = bytearray(first.raw)
    forged[-5] ^= 1
    with pytest.raises(AgoraError) as err:
        DataAd.open(bytes(forged))
    assert err.value.code == "ad_invalid"
    with pytest.raises(AgoraError):
        DataAd.issue(a, seq=1, iat=NOW, ttl_s=60, offers=[offer(b)])  # another provider's offer
    newer = ad(a, offer(a), seq=2)
    assert check_newer_data(newer, first) and not check_newer_data(newer, newer)
    with pytest.raises(AgoraError) as err:
        check_newer_data(first, newer)
    assert err.value.code == "ad_replayed"
