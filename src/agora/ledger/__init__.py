"""Money: a double-entry journal in integer minor units, escrow per contract, stake, and `Settlement`.

- `interfaces.py` (pure): account names (`wallet`, `escrow_account`, `stake_account`, `FEES`, `ISSUANCE`,
  `account_kind`), `Posting`, `Entry` (hash-chained), `EscrowState`, `VerifyReport`, and the two plug
  points: `JournalStore` (compare-and-append storage of entries) and `Settlement` (what the rest of agora
  calls to move money).

The signed metering receipt an escrow is released against lives in `agora.wire.settle`.
"""

from agora.ledger.interfaces import (
    ACCOUNT_KINDS,
    ENTRY_KINDS,
    ESCROW_STATES,
    FEES,
    ISSUANCE,
    SETTLED_STATES,
    AccountKind,
    Entry,
    EntryKind,
    EscrowState,
    EscrowStatus,
    JournalStore,
    Posting,
    Settlement,
    VerifyReport,
    account_kind,
    account_owner,
    escrow_account,
    may_go_negative,
    stake_account,
    wallet,
)

__all__ = [
    "ACCOUNT_KINDS",
    "ENTRY_KINDS",
    "ESCROW_STATES",
    "FEES",
    "ISSUANCE",
    "SETTLED_STATES",
    "AccountKind",
    "Entry",
    "EntryKind",
    "EscrowState",
    "EscrowStatus",
    "JournalStore",
    "Posting",
    "Settlement",
    "VerifyReport",
    "account_kind",
    "account_owner",
    "escrow_account",
    "may_go_negative",
    "stake_account",
    "wallet",
]
