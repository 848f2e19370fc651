"""Wiring of the ledger into a Node: the hub's ledger service, and every node's `Settlement`.

`attach_ledger(node)` is called from `Node._attach_features`, before compute (whose contracts settle
through `ledger_of(node).settlement`).

- A **hub node** (`--hub`, with `ledger.serve` on, the default) runs the ledger for its members: the journal
  is the hub's JetStream stream (`agora.ledger.journal_jetstream`; R3 on a hub cluster: it survives the
  loss of one hub), opened over the node's own NATS connection on first use, and `LedgerService` answers
  `/agora/ledger/*`. The operators are the hub node's DID and `ledger.operators`. The node announces the
  `ledger` capability, which is how members find it.
- **Every node** gets a `RemoteSettlement`: signed calls to the ledger hubs `ledger.hubs` (DIDs, in
  order), or, when none are named, to the peers that announce the `ledger` capability and dial one of
  this node's hub URLs (a hub node first asks itself). A hub cluster's hubs share the journal, so a call
  fails over from one to the next.

Trust: the announcement is signed by the hub node, but any member of an open hub could announce the
capability too; on a hub whose members are not vetted, name the ledger hubs (`--ledger-hubs DID`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any
from weakref import WeakKeyDictionary

from agora.errors import AgoraError
from agora.ledger import Entry, Ledger, VerifyReport, as_account, stake_account
from agora.ledger.journal_jetstream import JetStreamJournalStore
from agora.ledger.remote import RemoteSettlement
from agora.ledger.service import LedgerService
from agora.transport import NatsTransport

if TYPE_CHECKING:
    from agora.node.node import Node

log = logging.getLogger("agora.node.ledger")

LEDGER_CAPABILITY = "ledger"  # announced by a hub node that serves the ledger (value: the protocol version)


class LedgerFeature:
    """The node's money: `settlement` (remote, to the ledger hubs) and, on a hub, `service`."""

    def __init__(self, node: Node, service: LedgerService | None) -> None:
        self.node = node
        self.service = service
        assert node.runtime is not None
        self.settlement = RemoteSettlement(node.runtime, self.ledger_hubs, timeout=node.config.ledger.timeout_s)

    def ledger_hubs(self) -> list[str]:
        """The DIDs of the hubs whose ledger this node uses, in order (see the module docstring)."""
        named = list(self.node.config.ledger.hubs)
        if named:
            return named
        mine = list(getattr(self.node, "hub_urls", ()))
        ranked: list[tuple[int, str]] = []
        for peer in self.node.peer_table.alive():
            if not peer.capabilities.get(LEDGER_CAPABILITY):
                continue
            shared = [mine.index(u) for u in peer.hubs if u in mine]
            if not shared:
                continue
            # a hub node announces its own hub first: rank it where this node dials that hub
            own = peer.hubs[0] if peer.hubs else ""
            ranked.append((mine.index(own) if own in mine else len(mine) + min(shared), peer.did))
        found = [did for _, did in sorted(ranked)]
        return [self.node.did, *found] if self.service is not None else found

    def capability(self) -> dict[str, Any]:
        return {LEDGER_CAPABILITY: 1} if self.service is not None else {}

    # -- what the API shows and does (as this node) ---------------------------------------------------

    async def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"did": self.node.did, "serves": self.service is not None, "hubs": self.ledger_hubs()}
        try:
            info = await self.settlement.info()
        except AgoraError as exc:
            out["error"] = exc.to_dict()
            return out
        out.update({"hub": info.hub, "operators": list(info.operators), "head": info.head})
        return out

    async def balance(self, account: str | None) -> dict[str, Any]:
        acct = as_account(account or self.node.did)
        return {"account": acct, "balance": await self.settlement.balance(acct)}

    async def entries(self, account: str | None, since: int, limit: int) -> dict[str, Any]:
        """`account` "all": the whole journal; None: this node's wallet."""
        acct = None if account == "all" else as_account(account or self.node.did)
        found = await self.settlement.entries(acct, since, limit)
        return {"account": acct, "entries": [e.to_dict() for e in found]}

    async def verify(self) -> dict[str, Any]:
        """This node fetches the whole journal and walks the chain itself; the hub's own report beside it."""
        mine: VerifyReport = await self.settlement.verify()
        hub = await self.settlement.hub_verify()
        wallet = f"wallet:{self.node.did}"
        return {
            **mine.to_dict(),
            "balance": mine.balances.get(wallet, 0),
            "hub": {"ok": hub.ok, "entries": hub.entries, "last_id": hub.last_id},
            "agrees": (hub.entries, hub.last_id) == (mine.entries, mine.last_id) and hub.ok == mine.ok,
        }

    async def mint(self, to: str, amount: int, *, idem: str, memo: str = "") -> dict[str, Any]:
        entry = await self.settlement.mint(to, amount, actor=self.node.did, idem=idem, memo=memo)
        return await self._logged(entry)

    async def transfer(self, to: str, amount: int, *, idem: str, memo: str = "") -> dict[str, Any]:
        entry = await self.settlement.transfer(self.node.did, to, amount, actor=self.node.did, idem=idem, memo=memo)
        return await self._logged(entry)

    async def stake(self, amount: int, *, idem: str, unlock: bool = False) -> dict[str, Any]:
        """Lock (or, `unlock`, take back) this node's own stake; the entry and the stake it holds after."""
        me = self.node.did
        move = self.settlement.unstake if unlock else self.settlement.stake
        entry = await move(me, amount, actor=me, idem=idem)
        return await self._logged(entry) | {"stake": await self.settlement.balance(stake_account(me))}

    async def _logged(self, entry: Entry) -> dict[str, Any]:
        """The entry this node's own call wrote, also in its event log (`ledger.<kind>`): a retry that returned
        the first entry logs it again with the same seq and id (the journal holds it once)."""
        doc = entry.to_dict()
        data = {k: doc[k] for k in ("seq", "id", "kind", "postings", "idem", "memo")}
        await self.node.store.append_event(f"ledger.{entry.kind}", self.node.did, data)
        return {"entry": doc}


def _open_service(node: Node) -> LedgerService | None:
    """A hub node serving the ledger: its journal in the hub's stream, over the node's own connection."""
    cfg = node.config.ledger
    if node.hub is None or not cfg.serve:
        return None
    transport = node.transport
    if not isinstance(transport, NatsTransport):
        log.warning("this hub node runs on a transport without JetStream: it does not serve the ledger")
        return None
    replicas = node.hub.config.market_copies
    stream = node.hub.config.ledger_stream
    if stream is None:
        return None
    journal = JetStreamJournalStore(transport.nats_client, stream, replicas=replicas, timeout=cfg.timeout_s)
    return LedgerService(Ledger(journal, clock=node.clock), node.did, operators=cfg.operators)


_FEATURES: WeakKeyDictionary[Node, LedgerFeature] = WeakKeyDictionary()


def ledger_of(node: Node) -> LedgerFeature:
    feature = _FEATURES.get(node)
    if feature is None:
        raise AgoraError(
            "unavailable", "the ledger is not attached to this node (it is still starting?)", retryable=True
        )
    return feature


async def attach_ledger(node: Node) -> LedgerFeature:
    service = _open_service(node)
    if service is not None:
        node.add_actor(service)
    feature = LedgerFeature(node, service)
    node.capability_providers.append(feature.capability)
    _FEATURES[node] = feature
    return feature


__all__ = ["LEDGER_CAPABILITY", "LedgerFeature", "attach_ledger", "ledger_of"]
