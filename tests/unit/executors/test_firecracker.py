"""The firecracker probe: unavailable, always with the precise reason."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agora.errors import AgoraError
from agora.executors.firecracker import KVM_DENIED, NO_BINARY, NO_KVM, NOT_IMPLEMENTED, FirecrackerExecutor
from agora.executors.interfaces import ExecHandle, ExecRequest


def test_no_kvm(tmp_path: Path) -> None:
    ex = FirecrackerExecutor(kvm_path=tmp_path / "kvm", which=lambda _: "/usr/bin/firecracker")
    av = ex.probe()
    assert (av.engine, av.available, av.reason) == ("firecracker", False, NO_KVM)
    assert NO_KVM == "no /dev/kvm (KVM not enabled or not permitted)"


def test_kvm_not_accessible(tmp_path: Path) -> None:
    kvm = tmp_path / "kvm"
    kvm.write_text("")
    asked: list[tuple[Path, int]] = []

    def access(path: Path, mode: int) -> bool:  # as for a user outside the kvm group
        asked.append((path, mode))
        return False

    av = FirecrackerExecutor(kvm_path=kvm, which=lambda _: "/usr/bin/firecracker", access=access).probe()
    assert (av.available, av.reason) == (False, KVM_DENIED)
    assert asked == [(kvm, os.R_OK | os.W_OK)]


def test_no_binary(tmp_path: Path) -> None:
    kvm = tmp_path / "kvm"
    kvm.write_text("")
    looked: list[str] = []

    def which(name: str) -> str | None:
        looked.append(name)
        return None

    av = FirecrackerExecutor(kvm_path=kvm, which=which).probe()
    assert (av.available, av.reason) == (False, NO_BINARY)
    assert NO_BINARY == "firecracker binary not found" and looked == ["firecracker"]


def test_kvm_and_binary_present_still_unavailable_until_implemented(tmp_path: Path) -> None:
    kvm = tmp_path / "kvm"
    kvm.write_text("")
    av = FirecrackerExecutor(kvm_path=kvm, which=lambda _: "/opt/fc/firecracker").probe()
    assert (av.available, av.reason) == (False, NOT_IMPLEMENTED)
    assert av.details["binary"] == "/opt/fc/firecracker"


async def test_start_refuses_with_the_probe_reason(tmp_path: Path) -> None:
    ex = FirecrackerExecutor(kvm_path=tmp_path / "kvm")
    req = ExecRequest(task_id="t", engine="firecracker", work_dir=tmp_path)
    with pytest.raises(AgoraError) as err:
        await ex.start(req)
    assert err.value.code == "executor_unavailable"
    assert err.value.message == f"firecracker: {NO_KVM}"
    with pytest.raises(AgoraError) as err:
        await ex.cleanup(ExecHandle(req))
    assert err.value.code == "invalid_argument"


def test_this_machine_reports_unavailable_with_a_reason() -> None:
    av = FirecrackerExecutor().probe()
    assert not av.available
    assert av.reason in (NO_KVM, KVM_DENIED, NO_BINARY, NOT_IMPLEMENTED)
