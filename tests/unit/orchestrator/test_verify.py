"""The requester's checks on a provider's signed receipt and output paths, each on its own.

Every check here is the only guard against one lie of a hostile provider; each test fails when its check
is removed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agora.codec import CID
from agora.errors import AgoraError
from agora.identity import Keypair
from agora.orchestrator.verify import safe_output_path, verify_receipt
from agora.wire import OutputDigest, UsageReceipt

PROVIDER = Keypair.generate()
REQUESTER = Keypair.generate().did
INVOCATION = CID.of(b"the start invocation this node signed")
OUT = OutputDigest(name="out", path="result.txt", sha256="a" * 64, size=5)


def _receipt(**over: Any) -> bytes:
    fields: dict[str, Any] = {
        "alloc_id": "alloc-1",
        "requester": REQUESTER,
        "job": "j",
        "task": "t",
        "engine": "wasm",
        "exit_code": 0,
        "reason": "exited",
        "error_code": None,
        "started_at": 0.0,
        "ended_at": 1.0,
        "wall_s": 1.0,
        "cpu_s": 1.0,
        "peak_memory_bytes": 0,
        "outputs": [OUT],
        "invocation": INVOCATION,
        "iat": 1,
    }
    fields.update(over)
    return UsageReceipt.issue(PROVIDER, **fields).raw


def _verify(raw: bytes, outputs: list[dict[str, Any]] | None = None) -> None:
    verify_receipt(
        raw,
        provider=PROVIDER.did,
        requester=REQUESTER,
        alloc_id="alloc-1",
        invocation=INVOCATION,
        outputs=[OUT.to_dict()] if outputs is None else outputs,
    )


def test_a_receipt_that_matches_in_every_respect_is_accepted() -> None:
    _verify(_receipt())


def _refused(raw: bytes, outputs: list[dict[str, Any]] | None = None) -> AgoraError:
    with pytest.raises(AgoraError) as err:
        _verify(raw, outputs)
    assert err.value.code == "receipt_invalid"
    return err.value


def test_a_receipt_citing_another_start_invocation_is_refused() -> None:
    """A receipt the provider signed for some other run cannot be passed off for this one."""
    err = _refused(_receipt(invocation=CID.of(b"some other run")))
    assert "another start invocation" in err.message


def test_a_receipt_naming_another_requester_is_refused() -> None:
    err = _refused(_receipt(requester=Keypair.generate().did))
    assert "names requester" in err.message


def test_a_receipt_for_another_allocation_is_refused() -> None:
    err = _refused(_receipt(alloc_id="alloc-2"))
    assert "alloc-2" in err.message


@pytest.mark.parametrize(
    "listed",
    [
        [],  # the status hides an output the receipt signs for
        [OUT.to_dict(), {**OUT.to_dict(), "path": "extra.txt"}],  # or shows one it does not
        [{**OUT.to_dict(), "sha256": "b" * 64}],
        [{**OUT.to_dict(), "size": 6}],
        [{**OUT.to_dict(), "uri": "hub://elsewhere/x"}],
    ],
)
def test_outputs_in_the_status_that_differ_from_the_signed_ones_are_refused(listed: list[dict[str, Any]]) -> None:
    err = _refused(_receipt(), outputs=listed)
    assert "outputs in the status differ" in err.message


def test_a_receipt_that_is_not_bytes_is_refused() -> None:
    with pytest.raises(AgoraError) as err:
        verify_receipt(None, provider=PROVIDER.did, requester=REQUESTER, alloc_id="alloc-1", invocation=INVOCATION)
    assert err.value.code == "receipt_invalid"


@pytest.mark.parametrize(
    "rel",
    ["../x", "a/../../x", "/etc/passwd", "", ".", "a//b", "a/./b", "a/", "..", "a/\x00b", "x/.."],
)
def test_an_output_path_that_could_leave_the_job_dir_is_refused(tmp_path: Path, rel: str) -> None:
    with pytest.raises(AgoraError) as err:
        safe_output_path(tmp_path / "job" / "unit", rel)
    assert err.value.code == "receipt_invalid"


@pytest.mark.parametrize("rel", ["x", "a/b/c.txt", "..hidden", "a..b/c"])
def test_a_safe_output_path_lands_under_the_root(tmp_path: Path, rel: str) -> None:
    root = tmp_path / "job" / "unit"
    dest = safe_output_path(root, rel)
    assert dest.is_relative_to(root) and dest != root and dest.as_posix().endswith(rel)
