"""What the devnet hands its members: a quick onboarding benchmark unless the user chose one."""

from __future__ import annotations

from pathlib import Path

import pytest

import agora.devnet.launcher as launcher


class _Stop(Exception):
    pass


def _spawned_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    seen: list[dict[str, str]] = []

    def spawn(name: str, root: Path, args: list[str], env: dict[str, str]) -> launcher.Proc:
        seen.append(env)
        raise _Stop

    monkeypatch.setattr(launcher, "_spawn", spawn)
    with pytest.raises(_Stop):
        launcher.up(1, tmp_path / "net")
    return seen[0]


def test_members_run_the_quick_benchmark_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGORA_BENCHMARK", raising=False)
    monkeypatch.setenv("AGORA_API", "http://127.0.0.1:1")
    env = _spawned_env(tmp_path, monkeypatch)
    assert env["AGORA_BENCHMARK"] == "quick" and "AGORA_API" not in env


def test_a_benchmark_mode_the_user_set_is_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGORA_BENCHMARK", "on")
    assert _spawned_env(tmp_path, monkeypatch)["AGORA_BENCHMARK"] == "on"


def test_the_devnet_nodes_sell_and_the_hub_does_not(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    argv: dict[str, list[str]] = {}

    def spawn(name: str, root: Path, args: list[str], env: dict[str, str]) -> launcher.Proc:
        argv[name] = args
        if name != "hub":
            raise _Stop
        return launcher.Proc(name, root / name, None, root / "out")  # type: ignore[arg-type]

    monkeypatch.setattr(launcher, "_spawn", spawn)
    monkeypatch.setattr(launcher, "_wait_ready", lambda proc, deadline: {"hub_url": "nats://127.0.0.1:1"})
    monkeypatch.setattr(launcher, "_stop_child", lambda popen: None)
    with pytest.raises(_Stop):
        launcher.up(1, tmp_path / "net")
    assert "--sell" in argv["node-1"] and "--sell" not in argv["hub"]
