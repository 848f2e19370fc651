"""Fixtures of the docker executor: a private `dockerd` per test session, never the host's engine.

The daemon gets its own socket, data root, exec root and cgroup parent under a fresh temp dir, no
iptables and no default bridge (so it touches neither the host's firewall nor its docker0); a task
with network=True joins a bridge network the fixture creates and removes. No registry is reachable,
so the test image is imported from a tarball of the host's static busybox. Everything is removed
at the end of the session: containers, the daemon and its containerd, mounts, dirs, cgroups.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from agora.executors.docker import DockerExecutor
from tests.integration.executors.busybox_programs import SCRIPTS, BusyboxCatalog
from tests.integration.executors.conformance import ExecutorEnv
from tests.support import require, require_binary

TEST_IMAGE = "agora-test/busybox:1"
START_TIMEOUT = 60.0


class DockerCatalog(BusyboxCatalog):
    """The busybox programs in the test image. The stats API samples about once a second, so the
    memory program holds its allocation long enough to be seen (the executor cannot do better)."""

    def request(self, program: str, *args: object, **kw: object):  # type: ignore[no-untyped-def,override]
        req = super().request(program, *args, **kw)  # type: ignore[arg-type]
        if program == "alloc_memory":
            script = SCRIPTS["alloc_memory"] + " && sleep 2.5"
            req = type(req)(**{**req.__dict__, "command": [*req.command[:3], script, program]})
        return req


def docker_catalog() -> DockerCatalog:
    return DockerCatalog(engine="docker", network_mode="no_host_loopback", image=TEST_IMAGE)


def busybox_image_tar(busybox: str) -> bytes:
    """A root filesystem with /bin/busybox and a link per applet, plus the usual empty dirs."""
    applets = subprocess.run([busybox, "--list"], capture_output=True, text=True, check=True).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        # no /work: runc gives a tmpfs the mode of an existing mount point, and /work must be 1777
        for d in ("bin", "tmp", "etc", "proc", "sys", "dev"):
            info = tarfile.TarInfo(d)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
            tar.addfile(info)
        tar.add(busybox, arcname="bin/busybox")
        for name in applets:
            if name != "busybox" and "/" not in name:
                link = tarfile.TarInfo(f"bin/{name}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        passwd = b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(passwd)
        tar.addfile(info, io.BytesIO(passwd))
    return buf.getvalue()


class Dockerd:
    """A private docker daemon: start(), wait until it answers, stop() and remove every trace."""

    def __init__(self, dockerd: str) -> None:
        self.dockerd = dockerd
        self.root = Path(tempfile.mkdtemp(prefix="agora-dockerd-"))  # short: unix socket paths are bounded
        self.sock = self.root / "docker.sock"
        self.url = f"unix://{self.sock}"
        self.cgroup_parent = f"agora-test-docker-{os.getpid()}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.root / "dockerd.log"

    def start(self) -> None:
        errors = []
        for extra in ([], ["--storage-driver=vfs"]):  # overlay2 fails on some filesystems (overlay on overlay)
            if self._start(extra):
                return
            errors.append(f"{' '.join(extra) or 'default storage'}: {self._log_tail()}")
            self.stop()
        raise RuntimeError("dockerd did not start: " + " | ".join(errors))

    def _start(self, extra: list[str]) -> bool:
        args = [
            self.dockerd,
            f"--host={self.url}",
            f"--data-root={self.root / 'data'}",
            f"--exec-root={self.root / 'exec'}",
            f"--pidfile={self.root / 'dockerd.pid'}",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--bridge=none",
            f"--cgroup-parent=/{self.cgroup_parent}",
            "--exec-opt=native.cgroupdriver=cgroupfs",
            *extra,
        ]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and self.proc.poll() is None:
            with contextlib.suppress(Exception):
                client = docker.DockerClient(base_url=self.url, timeout=5)
                try:
                    if client.ping():
                        return True
                finally:
                    client.close()
            time.sleep(0.1)
        return False

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-2000:]
        return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def remove(self) -> None:
        mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(str(self.root))), key=len, reverse=True):
            subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
        shutil.rmtree(self.root, ignore_errors=True)
        for hierarchy in Path("/sys/fs/cgroup").iterdir():
            parent = hierarchy / self.cgroup_parent
            if parent.is_dir():
                for d in sorted((p for p in parent.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                    with contextlib.suppress(OSError):
                        d.rmdir()
                with contextlib.suppress(OSError):
                    parent.rmdir()


@pytest.fixture(scope="session")
def dockerd() -> Iterator[Dockerd]:
    binary = require_binary("dockerd", "docker.io")
    busybox = require_binary("busybox", "busybox-static")
    require(os.geteuid() == 0, "a private dockerd needs root")
    daemon = Dockerd(binary)
    try:
        daemon.start()
        client = docker.DockerClient(base_url=daemon.url, timeout=60)
        try:
            client.api.import_image_from_data(busybox_image_tar(busybox), repository=TEST_IMAGE.split(":")[0], tag="1")
            net = f"agora-test-{os.getpid()}"
            client.networks.create(
                net, driver="bridge", options={"com.docker.network.bridge.name": f"agt{os.getpid() % 100000}"}
            )
        finally:
            client.close()
        yield daemon
    finally:
        with contextlib.suppress(Exception):
            client = docker.DockerClient(base_url=daemon.url, timeout=30)
            for c in client.containers.list(all=True):
                c.remove(force=True)
            for n in client.networks.list(names=[f"agora-test-{os.getpid()}"]):
                n.remove()
            client.close()
        daemon.stop()
        daemon.remove()


@pytest.fixture(scope="session")
def docker_executor(dockerd: Dockerd) -> Iterator[DockerExecutor]:
    ex = DockerExecutor(dockerd.url, network=f"agora-test-{os.getpid()}", term_grace_s=1.0)
    availability = ex.probe()
    require(availability.available, f"docker executor unavailable: {availability.reason}")
    try:
        yield ex
    finally:
        ex.close()


def docker_leftovers(ex: DockerExecutor) -> list[str]:
    return ex.leftovers()


@pytest.fixture
def docker_env(docker_executor: DockerExecutor, tmp_path: Path) -> ExecutorEnv:
    return ExecutorEnv(
        executor=docker_executor,
        catalog=docker_catalog(),
        leftovers=lambda: docker_leftovers(docker_executor),
        work_root=tmp_path,
    )
