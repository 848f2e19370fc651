"""A Hypothesis state machine over the ledger and its escrow, checked against a small model.

Random mints, transfers, locks, full and partial releases, refunds, disputes, resolves, retries with a used
idempotency key, and bursts of concurrent spenders (asyncio.gather). After every step: the accounts sum
to 0, no account but issuance is negative, the books equal the model, no escrow was paid out twice, and
the stored chain verifies.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable
from typing import Any, TypeVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agora.clock import ManualClock
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.ledger import ISSUANCE, Entry, InternalLedgerSettlement, Ledger, MemoryJournalStore, escrow_account, wallet
from tests.unit.ledger.receipts import metering

T = TypeVar("T")
OPERATOR = Keypair.generate()
PARTIES = [Keypair.generate() for _ in range(3)]
who = st.integers(0, len(PARTIES) - 1)
money = st.integers(1, 400)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = MemoryJournalStore()
        self.bank = InternalLedgerSettlement(Ledger(self.store, clock=ManualClock()), OPERATOR.did)
        self.balances: Counter[str] = Counter()
        self.escrows: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any], Entry]] = []
        self.n = 0

    def teardown(self) -> None:
        self.loop.close()

    def run(self, aw: Awaitable[T]) -> T:
        return self.loop.run_until_complete(aw)  # type: ignore[arg-type]

    def key(self) -> str:
        self.n += 1
        return f"k{self.n}"

    def call(self, op: str, *args: Any, expect: str | None = None, **kw: Any) -> Entry | None:
        kw.setdefault("idem", self.key())
        try:
            entry: Entry = self.run(getattr(self.bank, op)(*args, **kw))
        except AgoraError as exc:
            assert exc.code == expect, f"{op}{args}: {exc.code} ({exc.message}), expected {expect}"
            return None
        assert expect is None, f"{op}{args} succeeded, expected {expect}"
        self.calls.append((op, args, kw, entry))
        return entry

    def move(self, src: str, dst: str, amount: int) -> None:
        self.balances[src] -= amount
        self.balances[dst] += amount

    # -- rules ----------------------------------------------------------------------------------------

    @rule(i=who, amount=money)
    def mint(self, i: int, amount: int) -> None:
        self.call("mint", PARTIES[i].did, amount, actor=OPERATOR.did)
        self.move(ISSUANCE, wallet(PARTIES[i].did), amount)

    @rule(i=who, j=who, amount=money)
    def transfer(self, i: int, j: int, amount: int) -> None:
        src, dst = PARTIES[i].did, PARTIES[j].did
        if i == j:
            self.call("transfer", src, dst, amount, actor=src, expect="invalid_argument")
            return
        short = self.balances[wallet(src)] < amount
        self.call("transfer", src, dst, amount, actor=src, expect="insufficient_funds" if short else None)
        if not short:
            self.move(wallet(src), wallet(dst), amount)

    @rule(i=who, j=who, amount=money)
    def lock(self, i: int, j: int, amount: int) -> None:
        payer, payee = PARTIES[i].did, PARTIES[j].did
        contract = f"c{len(self.escrows)}"
        if i == j:
            self.call("lock", contract, payer, payee, amount, actor=payer, expect="invalid_argument")
            return
        short = self.balances[wallet(payer)] < amount
        self.call("lock", contract, payer, payee, amount, actor=payer, expect="insufficient_funds" if short else None)
        if not short:
            self.move(wallet(payer), escrow_account(contract), amount)
            self.escrows[contract] = {"payer": i, "payee": j, "held": amount, "state": "locked", "payouts": 0}

    def _pick(self, c: int) -> tuple[str, dict[str, Any]]:
        name = sorted(self.escrows)[c % len(self.escrows)]
        return name, self.escrows[name]

    def _payout(self, name: str, e: dict[str, Any], to_payee: int, state: str) -> None:
        payer, payee = PARTIES[e["payer"]].did, PARTIES[e["payee"]].did
        self.move(escrow_account(name), wallet(payee), to_payee)
        self.move(escrow_account(name), wallet(payer), e["held"] - to_payee)
        e.update(held=0, state=state, payouts=e["payouts"] + 1)

    @staticmethod
    def _blocked(e: dict[str, Any], released_code: str = "contract_already_settled") -> str | None:
        if e["state"] == "disputed":
            return "contract_disputed"
        if e["state"] in ("released", "partially_released"):
            return released_code
        if e["state"] != "locked":
            return "contract_already_settled"
        return None

    @precondition(lambda self: self.escrows)
    @rule(c=st.integers(0, 50), share=st.integers(0, 4))
    def release(self, c: int, share: int) -> None:
        name, e = self._pick(c)
        amount = e["held"] * share // 4 if e["state"] == "locked" else 1
        raw = metering(PARTIES[e["payee"]], PARTIES[e["payer"]], name, amount, units=share, total=4)
        blocked = self._blocked(e, "contract_already_released")
        self.call("release", name, raw, actor=PARTIES[e["payee"]].did, expect=blocked)
        if blocked is None:
            self._payout(name, e, amount, "released" if share == 4 else "partially_released")

    @precondition(lambda self: self.escrows)
    @rule(c=st.integers(0, 50), by=st.sampled_from(["payer", "payee", "operator"]))
    def refund(self, c: int, by: str) -> None:
        name, e = self._pick(c)
        actor = OPERATOR.did if by == "operator" else PARTIES[e[by]].did
        blocked = self._blocked(e)
        self.call("refund", name, actor=actor, expect=blocked)
        if blocked is None:
            self._payout(name, e, 0, "refunded")

    @precondition(lambda self: self.escrows)
    @rule(c=st.integers(0, 50), by=st.sampled_from(["payer", "payee"]))
    def dispute(self, c: int, by: str) -> None:
        name, e = self._pick(c)
        blocked = self._blocked(e)
        self.call("dispute", name, actor=PARTIES[e[by]].did, reason="r", expect=blocked)
        if blocked is None:
            e["state"] = "disputed"

    @precondition(lambda self: self.escrows)
    @rule(c=st.integers(0, 50), share=st.integers(0, 4))
    def resolve(self, c: int, share: int) -> None:
        name, e = self._pick(c)
        amount = e["held"] * share // 4
        if e["state"] == "disputed":
            expect = None
        elif e["state"] == "locked":
            expect = "escrow_invalid_state"
        else:
            expect = "contract_already_settled"
        self.call("resolve", name, amount, actor=OPERATOR.did, decision="d", expect=expect)
        if expect is None:
            self._payout(name, e, amount, "resolved")

    @precondition(lambda self: self.calls)
    @rule(k=st.integers(0, 10_000))
    def retry(self, k: int) -> None:
        """A retried call (same key, same arguments) returns the first entry and changes nothing."""
        op, args, kw, first = self.calls[k % len(self.calls)]
        seq = self.bank.ledger.books.seq
        assert self.run(getattr(self.bank, op)(*args, **kw)) == first
        assert self.bank.ledger.books.seq == seq

    @rule(i=who, j=who, amount=st.integers(1, 100), n=st.integers(2, 6))
    def concurrent_spenders(self, i: int, j: int, amount: int, n: int) -> None:
        if i == j:
            return
        src, dst = PARTIES[i].did, PARTIES[j].did

        async def burst() -> list[Any]:
            calls = [self.bank.transfer(src, dst, amount, actor=src, idem=self.key()) for _ in range(n)]
            return await asyncio.gather(*calls, return_exceptions=True)

        results = self.run(burst())
        ok = sum(isinstance(r, Entry) for r in results)
        assert all(
            isinstance(r, Entry) or (isinstance(r, AgoraError) and r.code == "insufficient_funds") for r in results
        ), results
        assert ok == min(n, self.balances[wallet(src)] // amount)
        self.move(wallet(src), wallet(dst), ok * amount)

    # -- invariants -----------------------------------------------------------------------------------

    @invariant()
    def books_match_the_model_and_sum_to_zero(self) -> None:
        books = self.bank.ledger.books
        assert books.total == 0
        assert not books.negative()
        assert books.balances == {a: b for a, b in self.balances.items() if b}
        for name, e in self.escrows.items():
            state = books.escrows[name]
            assert (state.state, state.held) == (e["state"], e["held"])
            assert e["payouts"] <= 1

    @invariant()
    def no_escrow_is_paid_out_twice_and_the_chain_verifies(self) -> None:
        entries = self.run(self.store.read(0, 100_000))
        payouts = Counter(
            x.contract for x in entries if x.kind in ("escrow_release", "escrow_refund", "escrow_resolve")
        )
        assert all(n == 1 for n in payouts.values())
        report = self.run(self.bank.verify())
        assert report.ok, report.problems
        assert report.entries == len(entries)


TestLedgerMachine = LedgerMachine.TestCase
TestLedgerMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
