"""The offer book: validated create with filled-in defaults, withdraw, read back from the store, and the default
offer a node sells under (the machine minus a reserve, default prices)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.market.offers import DEFAULT_PRICES, DEFAULT_VALIDITY_S, MAX_ACTIVE, OfferBook, default_offer
from agora.models.capability import Capability, GiB, MiB
from agora.models.offer import ResourceOffer
from agora.store import MemoryStore

ME = Keypair.generate().did
BODY = {"resources": {"cpu_millis": 2000, "memory_bytes": GiB}, "price": {"base": {"cpu_second": 3}}}


@pytest.fixture
async def store() -> AsyncIterator[MemoryStore]:
    s = MemoryStore(ManualClock())
    await s.open()
    yield s
    await s.close()


async def test_create_fills_in_provider_id_and_validity(store: MemoryStore) -> None:
    clock = ManualClock(1_000_000)
    book = OfferBook(store, ME, clock=clock)
    doc = await book.create(BODY)
    offer = doc["offer"]
    assert offer["provider"] == ME and offer["valid_from"] == 1_000_000
    assert offer["valid_until"] == 1_000_000 + DEFAULT_VALIDITY_S
    [active] = book.active()
    assert active.offer_id == doc["offer_id"] and active.price.base.cpu_second == 3
    events = await store.events(kind="offer.created")
    assert [e.subject for e in events] == [doc["offer_id"]]


async def test_a_bad_offer_names_its_field_and_nothing_is_kept(store: MemoryStore) -> None:
    book = OfferBook(store, ME, clock=ManualClock())
    for body, field in (
        ({**BODY, "price": {"base": {"memory_gib_second": -1}}}, "price.base.memory_gib_second"),
        ({**BODY, "price": {"base": {"minimum": 2.5}}}, "price.base.minimum"),
        ({**BODY, "provider": Keypair.generate().did}, "provider"),
        ({**BODY, "terms": {"max_duration_s": 0}}, "terms.max_duration_s"),
        ({"resources": {"cpu_millis": 0}}, "resources"),
    ):
        with pytest.raises(AgoraError) as err:
            await book.create(body)
        assert err.value.code == "offer_invalid"
        assert err.value.details["field"] == field, err.value
    assert book.list() == [] and await store.query("offers") == []


async def test_withdrawn_offers_stay_listed_but_are_not_sold_and_survive_a_restart(store: MemoryStore) -> None:
    clock = ManualClock(1_000_000)
    book = OfferBook(store, ME, clock=clock)
    a = await book.create({**BODY, "offer_id": "a"})
    await book.create({**BODY, "offer_id": "b"})
    gone = await book.withdraw("a")
    assert gone["state"] == "withdrawn" and (await book.withdraw("a"))["withdrawn_at"] == gone["withdrawn_at"]
    assert book.get("a") is None and [o.offer_id for o in book.active()] == ["b"]
    again = OfferBook(store, ME, clock=clock)
    assert await again.load() == 1
    assert again.show("a")["state"] == "withdrawn" and again.show("a")["offer"] == a["offer"]
    assert [o.offer_id for o in again.active()] == ["b"]
    clock.advance(DEFAULT_VALIDITY_S + 1)  # past its validity: not sold any more
    assert again.active() == []
    with pytest.raises(AgoraError) as err:
        again.show("nope")
    assert err.value.code == "offer_not_found" and err.value.http_status == 404
    with pytest.raises(AgoraError) as err:
        await again.withdraw("nope")  # `agora offer withdraw nope`: the same *_not_found as the other nouns
    assert err.value.code == "offer_not_found"


async def test_the_number_of_active_offers_is_bounded(store: MemoryStore) -> None:
    book = OfferBook(store, ME, clock=ManualClock())
    for i in range(MAX_ACTIVE):
        await book.create({**BODY, "offer_id": f"o{i}"})
    with pytest.raises(AgoraError) as err:
        await book.create({**BODY, "offer_id": "one-more"})
    assert err.value.code == "offer_limit_reached" and err.value.http_status == 409
    assert err.value.details["limit"] == MAX_ACTIVE and str(MAX_ACTIVE) in err.value.message
    assert err.value.hint is not None and "agora offer withdraw" in err.value.hint


def test_the_default_offer_is_the_machine_minus_a_reserve_at_default_prices() -> None:
    big = Capability(cpu_millis=8000, memory_bytes=16 * GiB, disk_bytes=100 * GiB, executors=frozenset({"wasm"}))
    offer = default_offer(ME, big, now=100)
    assert isinstance(offer, ResourceOffer)
    assert offer.resources.cpu_millis == 7500 and offer.resources.memory_bytes == 16 * GiB - 512 * MiB
    assert offer.price.base == DEFAULT_PRICES and offer.terms.access.mode == "open"
    tiny = Capability(cpu_millis=500, memory_bytes=256 * MiB)
    small = default_offer(ME, tiny, now=100)  # the reserve never takes more than half
    assert small.resources.cpu_millis == 250 and small.resources.memory_bytes == 128 * MiB
    with pytest.raises(AgoraError) as err:
        default_offer(ME, tiny, now=100, reserve=Capability(cpu_millis=1000))
    assert err.value.code == "offer_invalid" and err.value.details["field"] == "reserve.cpu_millis"
