"""Routes about money: this node's view of its hub's ledger (GET /ledger, /ledger/balance, /ledger/entries,
/ledger/verify; POST /ledger/mint, /ledger/transfer, /ledger/stake, /ledger/unstake).

Every call goes to the ledger hub as a call signed by this node (`agora.node.ledger`): a transfer moves this
node's own money, a mint succeeds only when this node is one of the hub's operators (`ledger_unauthorized`
otherwise). A write without an idempotency key gets a fresh one; give `idem` to make a retry safe."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Body, Query

from agora.errors import AgoraError
from agora.models.capability import MAX_MINOR_UNITS
from agora.node import Node
from agora.node.ledger import ledger_of

MAX_LIMIT = 10_000


def _amount(body: dict[str, Any]) -> int:
    amount = body.get("amount")
    if type(amount) is not int or amount <= 0:
        raise AgoraError("invalid_argument", f"amount must be a positive integer (minor units), got {amount!r}")
    if amount > MAX_MINOR_UNITS:  # the signed call could not even carry it past 2**63
        raise AgoraError("invalid_argument", f"amount must be at most {MAX_MINOR_UNITS:,} minor units, got {amount:,}")
    return amount


def _text(body: dict[str, Any], key: str, default: str = "") -> str:
    value = body.get(key, default)
    if not isinstance(value, str):
        raise AgoraError("invalid_argument", f"{key} must be a string")
    return value


def _write_body(body: dict[str, Any], prefix: str) -> tuple[str, int, str, str]:
    unknown = sorted(set(body) - {"to", "amount", "idem", "memo"})
    if unknown:
        raise AgoraError("invalid_argument", f"unknown field {unknown[0]!r} (to, amount, idem, memo)")
    to = _text(body, "to")
    if not to:
        raise AgoraError("invalid_argument", "to: the receiver (a DID) is required")
    idem = _text(body, "idem") or f"{prefix}-{secrets.token_hex(12)}"
    return to, _amount(body), idem, _text(body, "memo")


def router(node: Node) -> APIRouter:
    app = APIRouter()

    @app.get("/ledger", tags=["ledger"])
    async def info() -> dict[str, Any]:
        """Where this node's money lives: the ledger hubs, the hub's operators, the journal's head."""
        return await ledger_of(node).info()

    @app.get("/ledger/balance", tags=["ledger"])
    async def balance(
        account: str | None = Query(None, description="a DID (its wallet) or an account; default: this node"),
    ) -> dict[str, Any]:
        """An account's balance in minor units."""
        return await ledger_of(node).balance(account)

    @app.get("/ledger/entries", tags=["ledger"])
    async def entries(
        account: str | None = Query(None, description="a DID or an account (default: this node); all: every entry"),
        since: int = Query(0, ge=0, description="entries after this seq"),
        limit: int = Query(100, ge=1, le=MAX_LIMIT),
    ) -> dict[str, Any]:
        """Entries, oldest first, each one's id checked by this node."""
        return await ledger_of(node).entries(account, since, limit)

    @app.get("/ledger/verify", tags=["ledger"])
    async def verify() -> dict[str, Any]:
        """This node fetches the whole journal and walks the hash chain and the rules itself."""
        return await ledger_of(node).verify()

    @app.post("/ledger/mint", tags=["ledger"], status_code=201)
    async def mint(body: dict[str, Any] = Body(..., description="{to: DID, amount, idem?, memo?}")) -> dict[str, Any]:
        """Issue money into a wallet: only the hub's operators may (this node signs the issuance)."""
        to, amount, idem, memo = _write_body(body, "mint")
        return await ledger_of(node).mint(to, amount, idem=idem, memo=memo)

    @app.post("/ledger/transfer", tags=["ledger"], status_code=201)
    async def transfer(
        body: dict[str, Any] = Body(..., description="{to: DID or fees, amount, idem?, memo?}"),
    ) -> dict[str, Any]:
        """Move this node's own money to another wallet."""
        to, amount, idem, memo = _write_body(body, "transfer")
        return await ledger_of(node).transfer(to, amount, idem=idem, memo=memo)

    @app.post("/ledger/stake", tags=["ledger"], status_code=201)
    async def stake(body: dict[str, Any] = Body(..., description="{amount, idem?}")) -> dict[str, Any]:
        """Lock this node's own money in its stake (`stake:<did>`): what jobs with a `min_stake` ask for."""
        amount, idem = _stake_body(body, "stake")
        return await ledger_of(node).stake(amount, idem=idem)

    @app.post("/ledger/unstake", tags=["ledger"], status_code=201)
    async def unstake(body: dict[str, Any] = Body(..., description="{amount, idem?}")) -> dict[str, Any]:
        """Take back (part of) this node's stake into its wallet."""
        amount, idem = _stake_body(body, "unstake")
        return await ledger_of(node).stake(amount, idem=idem, unlock=True)

    return app


def _stake_body(body: dict[str, Any], prefix: str) -> tuple[int, str]:
    unknown = sorted(set(body) - {"amount", "idem"})
    if unknown:
        raise AgoraError("invalid_argument", f"unknown field {unknown[0]!r} (amount, idem)")
    return _amount(body), _text(body, "idem") or f"{prefix}-{secrets.token_hex(12)}"


__all__ = ["router"]
