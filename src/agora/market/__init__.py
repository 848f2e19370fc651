"""The compute market: offers, capacity ads in a hub index, matching, bidding, reservations.

- `matching.py` (pure): `match(job, ads, policy, now) -> Decision`: hard filter with every failing
  dimension, soft score with the breakdown, the strategy's order, top-k; `JobNeed`, `MatchPolicy`.
- `table.py`, `fastmatch.py` (pure, numpy; import them as `agora.market.table` / `agora.market.fastmatch`,
  they are not loaded with the package): `CandidateTable` (the ads as columns, built once per index
  change), `TableCache`, and `match_table`, the same decision as `match` over the columns.
- `strategies.py` (pure): placement strategies as small classes (`balanced`, `cheapest`, `fastest`,
  `binpack`, `spread`).
- `diagnostics.py` (pure): `Verdict`, `Decision`, counts per reason, `what_would_fit` suggestions.
- `bidding.py` (pure): the provider's `answer` (a firm price from its offer, or coded declines) and the
  requester's `choose_bid` (the best valid bid, never the first to arrive).
- `reservations.py` (pure): `ReservationBook`: capacity reserved on commit, expiry of awards not followed
  by a start, release; never double-booked.
- `index.py`: the `MarketIndex` interface (publish, read, watch capacity ads; every ad verified, forged
  and replayed ones ignored and counted), `IndexReader` (the one reader every index shares) and
  `MemoryMarketIndex`; `index_nats.py`: `NatsMarketIndex`.

The offer data type lives in `agora.models.offer` and the signed messages in `agora.wire.market`.
"""

from agora.market.bidding import BidChoice, Quote, answer, choose_bid
from agora.market.diagnostics import (
    Change,
    Decision,
    Suggestion,
    Verdict,
    count_reasons,
    round_outcomes,
    what_would_fit,
)
from agora.market.index import AdVerifier, AdWatch, MarketIndex, MemoryMarketIndex
from agora.market.matching import JobNeed, MatchPolicy, hard_filter, match
from agora.market.reservations import Hold, ReservationBook
from agora.market.strategies import STRATEGIES, Scored, Strategy, strategy

__all__ = [
    "STRATEGIES",
    "AdVerifier",
    "AdWatch",
    "BidChoice",
    "Change",
    "Decision",
    "Hold",
    "JobNeed",
    "MarketIndex",
    "MatchPolicy",
    "MemoryMarketIndex",
    "Quote",
    "ReservationBook",
    "Scored",
    "Strategy",
    "Suggestion",
    "Verdict",
    "answer",
    "choose_bid",
    "count_reasons",
    "hard_filter",
    "match",
    "round_outcomes",
    "strategy",
    "what_would_fit",
]
