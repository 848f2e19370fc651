"""`round_outcomes`: in a placement round, exactly the provider(s) the unit went to read as placed; the others
say what became of them (bid, declined, failed, asked with no answer, passed but not asked, rejected)."""

from __future__ import annotations

from typing import Any

from agora.market import round_outcomes

PLACED, BIDDER, DECLINER, SILENT, SPARE, SMALL, BROKEN = (f"did:key:z6Mk{n}" for n in "ABCDEFG")


def cand(provider: str, verdict: str, *codes: str) -> dict[str, Any]:
    return {
        "provider": provider,
        "verdict": verdict,
        "ok": verdict != "rejected",
        "reasons": [{"code": c, "text": f"{c}: ..."} for c in codes],
    }


ROUND: dict[str, Any] = {
    "outcome": "placed",
    "provider": PLACED,
    "price": 1200,
    "decision": {
        "chosen": [PLACED, BIDDER, DECLINER, SILENT, BROKEN],
        "candidates": [
            cand(PLACED, "asked"),
            cand(BIDDER, "asked"),
            cand(DECLINER, "asked"),
            cand(SILENT, "chosen"),  # a record from before "asked"
            cand(BROKEN, "asked"),
            cand(SPARE, "passed"),
            cand(SMALL, "rejected", "insufficient_cpu", "insufficient_memory"),
        ],
    },
    "bids": [{"provider": PLACED, "price": 1200}, {"provider": BIDDER, "price": 1500}],
    "declines": [{"provider": DECLINER, "codes": ["busy"], "reasons": [{"code": "busy", "text": "no room"}]}],
    "failures": [{"provider": BROKEN, "stage": "award", "code": "bid_expired", "message": "late"}],
}


def test_only_the_placed_provider_reads_as_placed() -> None:
    out = round_outcomes(ROUND)
    got = {c["provider"]: (c["outcome"], c["outcome_text"]) for c in out["decision"]["candidates"]}
    assert got == {
        PLACED: ("placed", "placed here at 1,200"),
        BIDDER: ("bid", "bid 1,500, not placed here"),
        DECLINER: ("declined", "declined: busy"),
        SILENT: ("asked", "asked to bid, no answer"),
        BROKEN: ("failed", "award failed: bid_expired"),
        SPARE: ("passed", "passed, not asked"),
        SMALL: ("rejected", "rejected: insufficient_cpu, insufficient_memory"),
    }
    assert [p for p, (kind, _) in got.items() if kind == "placed"] == [PLACED]
    assert "outcome" not in ROUND["decision"]["candidates"][0]  # a copy: the record is left as it is


def test_replicas_are_placed_too_and_a_round_without_a_decision_is_kept() -> None:
    out = round_outcomes(ROUND, placed=[BIDDER])
    placed = [c["provider"] for c in out["decision"]["candidates"] if c["outcome"] == "placed"]
    assert placed == [PLACED, BIDDER]
    assert round_outcomes({"outcome": "no_fit", "bids": []}) == {"outcome": "no_fit", "bids": []}
