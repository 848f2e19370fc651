from pathlib import Path

from agora.executors.docker import DockerExecutor


def test_no_engine_socket_is_said_in_words(tmp_path: Path) -> None:
    probe = DockerExecutor(base_url=f"unix://{tmp_path}/docker.sock").probe()
    assert probe.available is False
    assert "does not exist" in probe.reason and "dockerd" in probe.reason


def test_a_socket_nobody_answers_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "docker.sock").write_text("")  # exists, but no engine behind it
    probe = DockerExecutor(base_url=f"unix://{tmp_path}/docker.sock").probe()
    assert probe.available is False and str(tmp_path) in probe.reason
