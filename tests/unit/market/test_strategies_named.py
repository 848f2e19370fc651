"""A job spec may name exactly the placement strategies the market implements."""

from agora.market.strategies import STRATEGIES as MARKET
from agora.models.job import STRATEGIES as SPEC


def test_the_spec_accepts_every_market_strategy_and_no_other() -> None:
    assert set(SPEC) == set(MARKET)
