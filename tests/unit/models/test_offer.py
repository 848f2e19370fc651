"""Resource offers: field-level validation (every problem, the first one named), round trips, quotes."""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agora.errors import AgoraError
from agora.models.capability import MAX_MINOR_UNITS, Capability, GiB, PriceSchedule
from agora.models.offer import (
    AccessPolicy,
    DataOffer,
    OfferTerms,
    PriceTerms,
    ResourceOffer,
    offer_from_dict,
    offered_resources,
)

DID = "did:key:z6MkprovidertestAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
REQ = "did:key:z6MkrequestertestBBBBBBBBBBBBBBBBBBBBBBBBBBBB"


def _data(**over: Any) -> dict[str, Any]:
    d: dict[str, Any] = {
        "kind": "resources",
        "offer_id": "o-1",
        "provider": DID,
        "resources": {"cpu_millis": 4000, "memory_bytes": 8 * GiB, "executors": ["wasm", "docker"]},
        "price": {
            "base": {"cpu_second": 10, "memory_gib_second": 2, "minimum": 50},
            "engines": {"docker": {"cpu_second": 20}},
        },
        "terms": {"max_duration_s": 3600, "engines": ["wasm", "docker"], "access": {"mode": "open"}},
        "valid_from": 1000,
        "valid_until": 2000,
    }
    d.update(over)
    return d


def _err(data: Any) -> AgoraError:
    with pytest.raises(AgoraError) as raised:
        offer_from_dict(data)
    assert raised.value.code == "offer_invalid"
    return raised.value


def test_round_trip() -> None:
    offer = offer_from_dict(_data())
    assert isinstance(offer, ResourceOffer)
    assert offer_from_dict(offer.to_dict()) == offer
    assert ResourceOffer.from_dict(offer.to_dict()) == offer
    assert offer.terms.accepts_engine("docker") and not offer.terms.accepts_engine("process")
    assert offer.is_valid_at(1000) and not offer.is_valid_at(2000)


def test_per_engine_price_replaces_the_base_schedule() -> None:
    offer = ResourceOffer.from_dict(_data())
    need = Capability(cpu_millis=2000, memory_bytes=GiB)
    assert offer.price.quote(need, 100, "wasm") == 2 * 10 * 100 + 2 * 100
    assert offer.price.quote(need, 100, "docker") == 2 * 20 * 100
    assert offer.price.quote(need, 1, "wasm") == 50  # the per-job minimum


@pytest.mark.parametrize(
    ("over", "field"),
    [
        ({"offer_id": ""}, "offer_id"),
        ({"provider": "bob"}, "provider"),
        ({"valid_until": 500}, "valid_until"),
        ({"resources": {"cpu_millis": -1}}, "resources.cpu_millis"),
        ({"resources": {"cpu_millis": 0}}, "resources"),
        ({"price": {"base": {"cpu_second": -5}}}, "price.base.cpu_second"),
        ({"price": {"base": {"cpu_sec": 5}}}, "price.base.cpu_sec"),
        ({"price": {"base": {}, "engines": {"process": {"cpu_second": 1}}}}, "price.engines.process"),
        ({"terms": {"max_duration_s": 0}}, "terms.max_duration_s"),
        ({"terms": {"engines": ["firecracker"]}}, "terms.engines"),
        ({"terms": {"access": {"mode": "friends"}}}, "terms.access.mode"),
        ({"terms": {"access": {"mode": "allowlist", "allow": ["alice"]}}}, "terms.access.allow"),
        ({"terms": {"access": {"mode": "min_trust", "min_trust": 2}}}, "terms.access.min_trust"),
        ({"extra": 1}, "extra"),
        ({"kind": "gold"}, "kind"),
    ],
)
def test_each_bad_field_is_named(over: dict[str, Any], field: str) -> None:
    err = _err(_data(**over))
    assert err.details["field"] == field
    assert field in err.hint
    assert any(e["path"] == field for e in err.details["errors"])


def test_every_problem_is_listed_at_once() -> None:
    err = _err(_data(offer_id="", provider=1, valid_from="x", terms={"max_duration_s": -1}))
    paths = [e["path"] for e in err.details["errors"]]
    assert paths[:3] == ["offer_id", "provider", "valid_from"]
    assert "terms.max_duration_s" in paths


def test_out_of_range_and_misspelt_resources_are_offer_invalid_with_clean_messages() -> None:
    """What an operator typing an offer by hand gets: every problem at its field, each message said once (no
    "expected cpu_millis: must be ..., got -2000, got None"), and numbers past 64 bits are offer_invalid at their
    field rather than the store's "integers must fit in 64 bits" later."""
    huge = 10**23
    err = _err(
        _data(
            resources={"cpu_millis": huge, "memory_bytes": "1e30", "cpu": 2, "executors": ["wasm"]},
            price={"base": {"cpu_second": 2**63 - 1, "minimum": huge}},
        )
    )
    got = {e["path"]: (e["expected"], e["got"]) for e in err.details["errors"]}
    assert got == {
        "resources.cpu": ("cpu_millis (1000 = one core) (an offer counts in integers, not a job spec's quantities)", 2),
        "resources.cpu_millis": (f"at most {2**62:,}", huge),
        "resources.memory_bytes": ("a non-negative integer", "1e30"),
        "price.base.cpu_second": (f"at most {MAX_MINOR_UNITS:,} minor units", 2**63 - 1),
        "price.base.minimum": (f"at most {MAX_MINOR_UNITS:,} minor units", huge),
    }
    assert "got None" not in err.message and err.message.count("got") == len(got)
    typo = _err(_data(resources={"cpu_milis": 1000})).details["errors"]
    assert typo == [
        {
            "path": "resources.cpu_milis",
            "expected": "no such field; known fields: " + ", ".join(Capability.__dataclass_fields__),
            "got": "cpu_milis",
        }
    ]
    bad = _err(_data(resources={"cpu_millis": 1000, "executors": "wasm"})).details["errors"]
    assert bad == [{"path": "resources.executors", "expected": "a list of engine names", "got": "wasm"}]
    assert offer_from_dict(_data(price={"base": {"cpu_second": MAX_MINOR_UNITS}})).price.base.cpu_second == 2**62


def test_the_example_offer_file_is_a_valid_offer() -> None:
    """examples/offers/offer.yaml, the one docs/market.md points to, as `agora offer create` sends it (the node
    fills in provider, id and validity)."""
    import yaml

    from tests.support import ROOT

    doc = yaml.safe_load((ROOT / "examples" / "offers" / "offer.yaml").read_text())
    offer = offer_from_dict({**doc, "offer_id": "o-1", "provider": DID, "valid_from": 0, "valid_until": 10})
    assert isinstance(offer, ResourceOffer) and offer.resources.cpu_millis == 1000
    assert offer.price.quote(Capability(cpu_millis=1000, memory_bytes=GiB), 100, "process") == 400


def test_the_most_money_is_the_ledgers_most() -> None:
    from agora.ledger.interfaces import MAX_AMOUNT

    assert MAX_MINOR_UNITS == MAX_AMOUNT


def test_not_an_object() -> None:
    assert _err([1, 2]).details["field"] == "kind"


def test_direct_construction_is_validated_too() -> None:
    good = ResourceOffer.from_dict(_data())
    with pytest.raises(AgoraError) as raised:
        ResourceOffer(good.offer_id, good.provider, good.resources, good.price, good.terms, 5, 5)
    assert raised.value.code == "offer_invalid" and raised.value.details["field"] == "valid_until"


def test_access_policy() -> None:
    assert AccessPolicy().admits(REQ, None)
    allow = AccessPolicy("allowlist", frozenset({REQ}))
    assert allow.admits(REQ, None) and not allow.admits(DID, 1.0)
    trust = AccessPolicy("min_trust", min_trust=0.5)
    assert trust.admits(REQ, 0.5) and not trust.admits(REQ, 0.4) and not trust.admits(REQ, None)
    offer = ResourceOffer.from_dict(_data(terms={"access": {"mode": "allowlist", "allow": [REQ]}}))
    assert offer.terms == OfferTerms(access=allow)


def test_offered_resources_is_detected_minus_reserve() -> None:
    detected = Capability(cpu_millis=8000, memory_bytes=16 * GiB, executors=frozenset({"wasm"}))
    sold = offered_resources(detected, Capability(cpu_millis=1000, memory_bytes=2 * GiB))
    assert (sold.cpu_millis, sold.memory_bytes, sold.executors) == (7000, 14 * GiB, frozenset({"wasm"}))
    with pytest.raises(AgoraError) as raised:
        offered_resources(detected, Capability(memory_bytes=32 * GiB))
    assert raised.value.code == "offer_invalid" and raised.value.details["field"] == "reserve.memory_bytes"


def test_data_offer_kind() -> None:
    d = {
        "kind": "data",
        "offer_id": "d-1",
        "provider": DID,
        "tags": ["x-ray", "lung"],
        "size_bytes": 10,
        "licence": "CC-BY-4.0",
        "price_per_round": 7,
        "valid_from": 0,
        "valid_until": 10,
    }
    offer = offer_from_dict(d)
    assert isinstance(offer, DataOffer) and offer.tags == frozenset({"x-ray", "lung"})
    assert offer_from_dict(offer.to_dict()) == offer
    assert _err({**d, "licence": " "}).details["field"] == "licence"
    with pytest.raises(AgoraError):
        ResourceOffer.from_dict(d)


def test_price_terms_default_is_free() -> None:
    assert PriceTerms().quote(Capability(cpu_millis=1000), 3600, None) == 0
    assert PriceTerms(PriceSchedule(cpu_second=1)).schedule_for("wasm") == PriceSchedule(cpu_second=1)


@given(
    cpu=st.integers(0, 64_000),
    mem=st.integers(0, 1 << 40),
    gpu=st.integers(0, 8),
    prices=st.tuples(*[st.integers(0, 10_000)] * 4),
    seconds=st.integers(0, 10**7),
)
def test_integer_seconds_cost_equals_the_exact_fraction(
    cpu: int, mem: int, gpu: int, prices: tuple[int, int, int, int], seconds: int
) -> None:
    """`cost` has an integer fast path for whole seconds (placement quotes); it must equal the exact path."""
    schedule = PriceSchedule(*prices)
    need = Capability(cpu_millis=cpu, memory_bytes=mem, gpu_count=gpu)
    rate = Fraction(cpu * prices[0], 1000) + Fraction(mem * prices[1], GiB) + gpu * prices[2]
    assert (
        schedule.cost(need, seconds) == max(prices[3], math.ceil(rate * seconds)) == schedule.cost(need, seconds + 0.0)
    )
