"""Grants: what a node accepts as a delegation to itself, and which one it picks to call another node."""

from __future__ import annotations

import pytest

from agora.clock import ManualClock
from agora.compute import DelegationBook, parse_token, token_text
from agora.compute.grants import MAX_TTL_S
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.store import MemoryStore
from agora.ucan import delegate
from tests.unit.compute.harness import Provider, Requester, grant

OFFER = "/agora/node/delegation/offer"


async def test_a_grant_is_offered_and_then_used(provider: Provider, requester: Requester) -> None:
    assert requester.book.proofs_for(provider.did, "/agora/alloc/start") == []
    await grant(provider, requester, ttl_s=3600)
    [d] = requester.book.proofs_for(provider.did, "/agora/alloc/start")
    assert (d.iss, d.sub, d.aud, d.cmd) == (provider.did, provider.did, requester.did, "/agora/alloc")
    assert requester.book.proofs_for(provider.did, "/agora/market/bid") == []
    assert requester.book.proofs_for(requester.did, "/agora/alloc/start") == []
    issued = await provider.book.issued()
    assert [g["aud"] for g in issued] == [requester.did]
    held = requester.book.held()
    assert [h["cid"] for h in held] == [str(d.cid)]
    assert [e.kind for e in await requester.store.events(kind="delegation.received")] == ["delegation.received"]
    # offering the same token again changes nothing
    assert await provider.runtime.call(requester.did, OFFER, {"token": d.raw}) == {"cid": str(d.cid), "stored": False}


@pytest.mark.parametrize("case", ["other-audience", "forged", "not-about-issuer", "expired", "garbage", "cut"])
async def test_offers_a_node_must_refuse(provider: Provider, requester: Requester, case: str) -> None:
    outsider = Keypair.generate()
    if case == "other-audience":
        raw, code = (
            delegate(provider.keypair, aud=outsider.did, sub=provider.did, cmd="/agora/alloc", exp=None).raw,
            "ucan_audience_mismatch",
        )
    elif case == "forged":
        good = bytearray(
            delegate(provider.keypair, aud=requester.did, sub=provider.did, cmd="/agora/alloc", exp=None).raw
        )
        good[5] ^= 1
        raw, code = bytes(good), "ucan_signature_invalid"
    elif case == "not-about-issuer":
        raw = delegate(outsider, aud=requester.did, sub=provider.did, cmd="/agora/alloc", exp=None).raw
        code = "ucan_invalid_claim"
    elif case == "expired":
        raw, code = (
            delegate(provider.keypair, aud=requester.did, sub=provider.did, cmd="/agora/alloc", exp=1).raw,
            "ucan_expired",
        )
    elif case == "cut":  # a token copied only in part: not even whole CBOR
        whole = delegate(provider.keypair, aud=requester.did, sub=provider.did, cmd="/agora/alloc", exp=None).raw
        raw, code = whole[:40], "ucan_malformed"
    else:
        raw, code = b"\x82\x01\x02", "ucan_malformed"
    with pytest.raises(AgoraError) as err:
        await provider.runtime.call(requester.did, OFFER, {"token": raw})
    assert err.value.code == code
    assert requester.book.held() == [] and await requester.store.count("delegations") == 0


async def test_the_held_count_is_bounded_and_expired_ones_make_room() -> None:
    clock = ManualClock(1_000_000.0)
    me, other = Keypair.generate(), Keypair.generate()
    store = MemoryStore(clock)
    book = DelegationBook(me, store, clock=clock, max_held=2)
    short = delegate(other, aud=me.did, sub=other.did, cmd="/agora/alloc", exp=1_000_100)
    await book.accept(short.raw, source="test")
    await book.accept(delegate(other, aud=me.did, sub=other.did, cmd="/agora", exp=None).raw, source="test")
    third = delegate(other, aud=me.did, sub=other.did, cmd="/agora/alloc/start", exp=None)
    with pytest.raises(AgoraError) as err:
        await book.accept(third.raw, source="test")
    assert err.value.code == "delegation_limit"
    clock.advance(200)
    await book.accept(third.raw, source="test")
    assert len(book.held()) == 2 and await store.count("delegations") == 2
    # the longest-lived covering delegation is picked; a reload from the store sees the same
    assert book.proofs_for(other.did, "/agora/alloc/start")[0].exp is None
    again = DelegationBook(me, store, clock=clock, max_held=2)
    assert await again.load() == 2


async def test_issuing_checks_its_arguments(provider: Provider) -> None:
    for kwargs, code in (
        ({"aud": "nobody"}, "did_invalid"),
        ({"aud": provider.did}, "invalid_argument"),
        ({"aud": Keypair.generate().did, "command": "/other"}, "invalid_argument"),
        ({"aud": Keypair.generate().did, "ttl_s": 5}, "invalid_argument"),
        ({"aud": Keypair.generate().did, "policy": [["~~", ".x", 1]]}, "ucan_policy_invalid"),
    ):
        with pytest.raises(AgoraError) as err:
            await provider.book.issue(**kwargs)  # type: ignore[arg-type]
        assert err.value.code == code, kwargs
    assert await provider.book.issued() == []


def test_token_text_round_trips_and_rejects_garbage() -> None:
    d = delegate(Keypair.generate(), aud=Keypair.generate().did, sub=None, cmd="/agora", exp=None)
    text = token_text(d)
    assert parse_token(text) == d.raw
    assert parse_token(text.replace("+", "-").replace("/", "_").rstrip("=")) == d.raw
    with pytest.raises(AgoraError) as err:
        parse_token("not base64!")
    assert err.value.code == "ucan_malformed"


async def test_junk_offers_never_block_an_imported_grant() -> None:
    """The reviewer's scenario: offers from throw-away keys used to fill the book and lock out real grants."""
    clock = ManualClock(1_000_000.0)
    me = Keypair.generate()
    store = MemoryStore(clock)
    book = DelegationBook(me, store, clock=clock, max_held=4, max_offered=3)
    junk = [Keypair.generate() for _ in range(6)]
    # no exp, or one beyond the longest grant a node issues: refused, nothing kept
    for exp in (None, int(clock.now()) + MAX_TTL_S + 3600):
        with pytest.raises(AgoraError) as err:
            await book.accept(
                delegate(junk[0], aud=me.did, sub=junk[0].did, cmd="/agora", exp=exp).raw, source="x", offered=True
            )
        assert err.value.code == "ucan_lifetime_invalid"
    # a DID as source is what the offer behavior passes: treated as an offer too
    with pytest.raises(AgoraError) as err:
        await book.accept(
            delegate(junk[0], aud=me.did, sub=junk[0].did, cmd="/agora", exp=None).raw, source=junk[0].did
        )
    assert err.value.code == "ucan_lifetime_invalid"
    assert book.held() == [] and await store.count("delegations") == 0
    # many valid junk offers: the offered book stays at its bound, evicting the least recently used
    offers = [delegate(k, aud=me.did, sub=k.did, cmd="/agora", exp=int(clock.now()) + 3600) for k in junk]
    for d in offers:
        clock.advance(1)
        await book.accept(d.raw, source=d.iss)
    assert {h["cid"] for h in book.held()} == {str(d.cid) for d in offers[-3:]}
    assert await store.count("delegations") == 3
    # imports by the operator have their own bound: all four fit, none refused
    provider = Keypair.generate()
    for i in range(4):
        real = delegate(provider, aud=me.did, sub=provider.did, cmd=f"/agora/alloc{'/x' * i}", exp=None)
        _, new = await book.accept(real.raw, source="api")
        assert new
    assert len(book.held()) == 7 and await store.count("delegations") == 7
    assert book.proofs_for(provider.did, "/agora/alloc/start")[0].iss == provider.did
    # expired offers are pruned (store too), imports without exp stay
    clock.advance(3600 * 2)
    assert await book.prune() == 3
    assert await store.count("delegations") == 4
    again = DelegationBook(me, store, clock=clock, max_held=4, max_offered=3)
    assert await again.load() == 4


async def test_a_used_offer_is_evicted_last_and_survives_a_reload() -> None:
    clock = ManualClock(1_000_000.0)
    me = Keypair.generate()
    store = MemoryStore(clock)
    book = DelegationBook(me, store, clock=clock, max_offered=2)
    keys = [Keypair.generate() for _ in range(3)]
    offers = [delegate(k, aud=me.did, sub=k.did, cmd="/agora", exp=int(clock.now()) + 3600) for k in keys]
    await book.accept(offers[0].raw, source=keys[0].did)
    await book.accept(offers[1].raw, source=keys[1].did)
    assert book.proofs_for(keys[0].did, "/agora/alloc/start") == [offers[0]]  # touches offer 0
    await book.accept(offers[2].raw, source=keys[2].did)
    assert {h["cid"] for h in book.held()} == {str(offers[0].cid), str(offers[2].cid)}
    assert book.proofs_for(keys[1].did, "/agora/alloc/start") == []
    again = DelegationBook(me, store, clock=clock, max_offered=2)
    assert await again.load() == 2
    assert all(h["offered"] for h in again.held())
    # the operator importing an offered token moves it to the kept book
    _, new = await again.accept(offers[2].raw, source="api")
    assert not new
    assert {h["cid"]: h["offered"] for h in again.held()}[str(offers[2].cid)] is False


async def test_a_flood_of_offers_from_fresh_keys_cannot_evict_a_grant_in_use() -> None:
    """The attack review's scenario: any number of fresh keys each offer a self-issued delegation; the LRU used to
    evict a genuine provider's grant that this node's jobs rely on. Used offers go last, and one key holds at
    most MAX_OFFERED_PER_ISSUER offers."""
    clock = ManualClock(1_000_000.0)
    me = Keypair.generate()
    store = MemoryStore(clock)
    book = DelegationBook(me, store, clock=clock, max_offered=4)
    provider = Keypair.generate()
    grant = delegate(provider, aud=me.did, sub=provider.did, cmd="/agora/alloc", exp=int(clock.now()) + 3600)
    await book.accept(grant.raw, source=provider.did)
    assert book.proofs_for(provider.did, "/agora/alloc/start") == [grant]  # a job of ours cites it
    for _ in range(40):  # bounded flood
        clock.advance(1)
        k = Keypair.generate()
        await book.accept(
            delegate(k, aud=me.did, sub=k.did, cmd="/agora", exp=int(clock.now()) + 3600).raw, source=k.did
        )
    assert book.proofs_for(provider.did, "/agora/alloc/start") == [grant]
    assert len(book.held()) == 4 and await store.count("delegations") == 4
    # one key offering many delegations keeps only its newest two, and evicts nothing of anyone else's
    one = Keypair.generate()
    before = {h["cid"] for h in book.held()}
    mine = []
    for i in range(5):
        d = delegate(one, aud=me.did, sub=one.did, cmd=f"/agora{'/x' * i}", exp=int(clock.now()) + 3600)
        mine.append(d)
        await book.accept(d.raw, source=one.did)
    held = {h["cid"] for h in book.held()}
    assert {str(d.cid) for d in mine[-2:]} <= held and not {str(d.cid) for d in mine[:-2]} & held
    assert str(grant.cid) in held and len(held & before) == 2
