"""The hub's ledger service: the actor that answers `/agora/ledger/*` for the hub's members.

The hub runs the ledger for its members (a cooperative's bank). Every behavior is public: a member holds no
grant from the hub, its authority is the signature on its invocation, and the service acts as the
invocation's issuer (`ctx.invoker`), never as a DID named in the request: a node moves only its own money
(`InternalLedgerSettlement` checks the owner of every account it spends from). The operators (the hub
node's own DID and the DIDs in `LedgerSettings.operators`) may also mint, resolve disputes and slash.

The behaviors are declared `mutating=False`: every write carries an idempotency key, so a replay of the same
invocation returns the first entry and changes nothing. That is the ledger's own at-most-once, and it holds
across hubs too (the key lives in the shared journal), which a per-node replay journal could not give.

On a hub cluster each hub runs this service on its own `Ledger` over the one replicated JetStream stream;
the stream's expected-sequence appends keep them from ever spending the same money twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from agora.actor import Actor, CallContext, behavior
from agora.errors import AgoraError
from agora.ledger.interfaces import VerifyReport
from agora.ledger.ledger import Ledger
from agora.ledger.settlement import InternalLedgerSettlement, as_account
from agora.wire import ledger as wl


@dataclass
class LedgerSettings:
    """Where a node's money lives (`--ledger-*` flags, `AGORA_LEDGER_*`; docs/ledger.md).

    - `serve`: a hub node runs the ledger service for its members (the journal in its JetStream stream).
    - `hubs`: the DIDs of the hubs whose ledger this node uses, in order of preference (a hub cluster: one
      per hub; a call fails over to the next when one does not answer). Empty: learned from the signed
      announcements of the hubs this node dials (a hub announces the `ledger` capability).
    - `operators`: on a hub, the DIDs besides the hub's own that may mint, resolve disputes and slash.
    - `timeout_s`: how long one call to a ledger hub may take.
    """

    serve: bool = True
    hubs: tuple[str, ...] = ()
    operators: tuple[str, ...] = ()
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        for name in ("hubs", "operators"):
            for did in getattr(self, name):
                if not isinstance(did, str) or not did.startswith("did:") or len(did) > 256 or " " in did:
                    raise AgoraError(
                        "config_invalid",
                        f"ledger.{name}: {str(did)[:80]!r} is not a DID",
                        hint="Give the DID a node prints at start (`agora status`), e.g. did:key:z6Mk...",
                    )
        if isinstance(self.timeout_s, bool) or not 0 < self.timeout_s <= 600:
            raise AgoraError("config_invalid", f"ledger.timeout_s must be 0 < s <= 600, got {self.timeout_s!r}")


class LedgerService(Actor):
    """`/agora/ledger/*` on one `Ledger`; `hub` is the hub node's DID, an operator like `operators`."""

    name = "ledger"

    def __init__(self, ledger: Ledger, hub: str, operators: Sequence[str] = ()) -> None:
        self.ledger = ledger
        self.hub = hub
        self.operators = tuple(dict.fromkeys([hub, *operators]))
        # one settlement per operator on the same ledger (one lock, one set of books): the caller is the actor
        self._as_operator = {did: InternalLedgerSettlement(ledger, did) for did in self.operators}
        self._member = self._as_operator[hub]

    def settlement_for(self, caller: str) -> InternalLedgerSettlement:
        """The settlement that lets `caller` do what its DID may: an operator's own, else a member's."""
        return self._as_operator.get(caller, self._member)

    # -- reads ----------------------------------------------------------------------------------------

    @behavior(wl.INFO, public=True, mutating=False, summary="who runs this ledger (hub, operators, head)")
    async def info(self, ctx: CallContext) -> Any:
        wl.check_version(ctx.args)
        return wl.InfoReply(self.hub, self.operators, (await self.ledger.refresh()).seq).to_wire()

    @behavior(wl.BALANCE, public=True, mutating=False, summary="an account's balance (a DID: its wallet)")
    async def balance(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.BalanceArgs, ctx.args)
        account = as_account(a.account)
        return wl.BalanceReply(account, await self._member.balance(account)).to_wire()

    @behavior(wl.ENTRIES, public=True, mutating=False, summary="entries (of one account), oldest first")
    async def entries(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.EntriesArgs, ctx.args)
        limit = max(0, min(a.limit, wl.MAX_ENTRIES_PAGE))
        head = (await self.ledger.refresh()).seq
        found = await self._member.entries(a.account, max(0, a.since), limit)
        return wl.EntriesReply(tuple(e.encode() for e in found), head).to_wire()

    @behavior(wl.ESCROW, public=True, mutating=False, summary="a contract's escrow")
    async def escrow(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.EscrowArgs, ctx.args)
        state = await self._member.escrow(a.contract)
        return wl.escrow_reply(None if state is None else state.to_dict())

    @behavior(wl.VERIFY, public=True, mutating=False, summary="walk the stored journal: links, ids, rules, sum 0")
    async def verify(self, ctx: CallContext) -> Any:
        wl.check_version(ctx.args)
        return verify_reply(await self.ledger.verify()).to_wire()

    # -- writes (the caller is the actor) -------------------------------------------------------------

    @behavior(wl.MINT, public=True, mutating=False, summary="issue money into a wallet (operators only)")
    async def mint(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.MintArgs, ctx.args)
        s = self.settlement_for(ctx.invoker)
        entry = await s.mint(a.to, a.amount, actor=ctx.invoker, idem=a.idem, memo=a.memo)
        return wl.entry_reply(entry.encode())

    @behavior(wl.TRANSFER, public=True, mutating=False, summary="move the caller's money")
    async def transfer(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.TransferArgs, ctx.args)
        s = self.settlement_for(ctx.invoker)
        entry = await s.transfer(a.src, a.dst, a.amount, actor=ctx.invoker, idem=a.idem, memo=a.memo)
        return wl.entry_reply(entry.encode())

    @behavior(wl.LOCK, public=True, mutating=False, summary="lock the caller's money in a contract's escrow")
    async def lock(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.LockArgs, ctx.args)
        s = self.settlement_for(ctx.invoker)
        entry = await s.lock(a.contract, a.payer, a.payee, a.amount, actor=ctx.invoker, idem=a.idem)
        return wl.entry_reply(entry.encode())

    @behavior(wl.DELIVER, public=True, mutating=False, summary="record the payee's signed usage receipt")
    async def deliver(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.DeliverArgs, ctx.args)
        s = self.settlement_for(ctx.invoker)
        entry = await s.deliver(a.contract, a.usage_receipt, actor=ctx.invoker, idem=a.idem)
        return wl.entry_reply(entry.encode())

    @behavior(wl.RELEASE, public=True, mutating=False, summary="release an escrow against the dual-signed receipt")
    async def release(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.ReleaseArgs, ctx.args)
        s = self.settlement_for(ctx.invoker)
        entry = await s.release(a.contract, a.metering_receipt, actor=ctx.invoker, idem=a.idem)
        return wl.entry_reply(entry.encode())

    @behavior(wl.REFUND, public=True, mutating=False, summary="refund an escrow to its payer")
    async def refund(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.RefundArgs, ctx.args)
        s = self.settlement_for(ctx.invoker)
        entry = await s.refund(a.contract, actor=ctx.invoker, idem=a.idem, reason=a.reason)
        return wl.entry_reply(entry.encode())

    @behavior(wl.DISPUTE, public=True, mutating=False, summary="freeze an escrow until the operator resolves it")
    async def dispute(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.DisputeArgs, ctx.args)
        s = self.settlement_for(ctx.invoker)
        entry = await s.dispute(a.contract, actor=ctx.invoker, idem=a.idem, reason=a.reason)
        return wl.entry_reply(entry.encode())

    @behavior(wl.RESOLVE, public=True, mutating=False, summary="resolve a disputed escrow (operators only)")
    async def resolve(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.ResolveArgs, ctx.args)
        s = self.settlement_for(ctx.invoker)
        entry = await s.resolve(a.contract, a.payee_amount, actor=ctx.invoker, idem=a.idem, decision=a.decision)
        return wl.entry_reply(entry.encode())

    @behavior(wl.STAKE, public=True, mutating=False, summary="lock the caller's stake")
    async def stake(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.StakeArgs, ctx.args)
        entry = await self.settlement_for(ctx.invoker).stake(a.did, a.amount, actor=ctx.invoker, idem=a.idem)
        return wl.entry_reply(entry.encode())

    @behavior(wl.UNSTAKE, public=True, mutating=False, summary="unlock the caller's stake")
    async def unstake(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.UnstakeArgs, ctx.args)
        entry = await self.settlement_for(ctx.invoker).unstake(a.did, a.amount, actor=ctx.invoker, idem=a.idem)
        return wl.entry_reply(entry.encode())

    @behavior(wl.SLASH, public=True, mutating=False, summary="slash a provider's stake (operators only)")
    async def slash(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.SlashArgs, ctx.args)
        s = self.settlement_for(ctx.invoker)
        entry = await s.slash(
            a.did, a.amount, evidence=a.evidence, to=a.to, actor=ctx.invoker, idem=a.idem, memo=a.memo
        )
        return wl.entry_reply(entry.encode())

    @behavior(wl.SLASH_CLAIM, public=True, mutating=False, summary="slash a provider on signed proof (requester)")
    async def slash_claim(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.SlashClaimArgs, ctx.args)
        entry = await self.settlement_for(ctx.invoker).slash_proven(a.accused, a.agreeing, a.amount, actor=ctx.invoker)
        return wl.entry_reply(entry.encode())

    @behavior(wl.STAKES, public=True, mutating=False, summary="the stake of each DID (one call per round)")
    async def stakes(self, ctx: CallContext) -> Any:
        a = wl.read_args(wl.StakesArgs, ctx.args)
        return wl.StakesReply(await self._member.stakes(a.dids)).to_wire()

    async def stop(self) -> None:
        await self.ledger.close()


def verify_reply(report: VerifyReport) -> wl.VerifyReply:
    return wl.VerifyReply(report.ok, report.entries, report.last_id, report.problems, dict(report.balances))


__all__ = ["LedgerService", "LedgerSettings", "verify_reply"]
