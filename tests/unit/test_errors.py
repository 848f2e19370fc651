"""Retryability has one source, the catalog; a peer's `retryable` is advice, never authority."""

from __future__ import annotations

import pytest

from agora.codec import CID
from agora.errors import CATALOG, AgoraError, is_retryable
from agora.identity import Keypair
from agora.wire import Receipt


def test_bugs_are_not_retryable() -> None:
    assert not is_retryable("internal")
    assert not is_retryable("handler_failed")
    assert not AgoraError("internal", "boom").retryable
    assert not AgoraError("handler_failed", "boom").retryable


def test_is_retryable_is_the_catalog_flag() -> None:
    for code, kind in CATALOG.items():
        assert is_retryable(code) is kind.retryable, code
        assert AgoraError(code, "x").retryable is kind.retryable, code
    assert not is_retryable("no_such_code")


def test_a_raiser_may_narrow_but_never_widen() -> None:
    assert is_retryable("insufficient_capacity")
    assert not AgoraError("insufficient_capacity", "bigger than the node", retryable=False).retryable
    assert AgoraError("insufficient_capacity", "busy", retryable=True).retryable
    assert not AgoraError("task_failed", "exit 1", retryable=True).retryable
    assert not AgoraError("internal", "bug", retryable=True).retryable


@pytest.mark.parametrize("code", ["handler_failed", "internal", "task_failed", "invalid_argument"])
def test_a_remote_claim_of_retryable_is_advice(code: str) -> None:
    assert not AgoraError.from_dict({"code": code, "message": "m", "retryable": True}).retryable


def test_a_remote_may_say_do_not_retry() -> None:
    assert AgoraError.from_dict({"code": "timeout", "message": "m"}).retryable
    assert not AgoraError.from_dict({"code": "timeout", "message": "m", "retryable": False}).retryable


def test_an_unknown_remote_code_is_not_retryable_even_if_claimed() -> None:
    err = AgoraError.from_dict({"code": "shiny_new_code", "message": "m", "retryable": True})
    assert err.code == "internal" and not err.retryable


class _Lie(AgoraError):
    """What a hostile or buggy peer puts on the wire: a non-retryable code marked retryable."""

    def to_dict(self) -> dict[str, object]:
        return {**super().to_dict(), "retryable": True}


def test_a_signed_receipt_claiming_retryable_is_not_believed() -> None:
    peer = Keypair.from_seed(b"\x07" * 32)
    lie = _Lie("handler_failed", "it broke")
    receipt = Receipt.issue(peer, CID.of(b"x"), error=lie, iat=1)
    decoded = Receipt.decode(receipt.raw, expected_issuer=peer.did)
    assert decoded.error is not None
    assert decoded.error.code == "handler_failed" and not decoded.error.retryable
