"""AgoraClient: what it sends, checked at the HTTP boundary (an httpx.MockTransport in place of a node)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from agora.client import AgoraClient


def _recording(seen: list[dict[str, Any]]) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        return httpx.Response(200, json={"id": "job-1", "name": "x", "node": "did:key:z"})

    return httpx.MockTransport(handle)


def test_submit_job_looks_up_relative_paths_from_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    seen: list[dict[str, Any]] = []
    with AgoraClient("http://127.0.0.1:1", transport=_recording(seen)) as c:
        c.submit_job("name: x\ntasks: [{name: t, module: hello.wat}]\n")
        c.submit_job({"name": "x"}, base_dirs=["/srv/jobs", "/srv/modules"])
        c.submit_job({"name": "x"}, base_dirs=[])
    assert [body["base_dirs"] for body in seen] == [[str(tmp_path)], ["/srv/jobs", "/srv/modules"], []]
