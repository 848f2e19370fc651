"""Executor overhead: agora's executors vs the raw runtime underneath, for a trivial task, in one run.

    .venv/bin/python bench/executors.py [--n 300] [--engines wasm,process,docker] [--smoke]

Each engine is one function returning a `Comparison` (or the reason it was skipped):
  wasm     agora `WasmExecutor.run` (start + wait + cleanup: thread, WASI setup, log fan-out, disk
           watcher, epoch callback) vs raw wasmtime-py: Store + WasiConfig + instantiate + `_start`
           of the same module, already compiled, on an engine with the same settings.
           Target: <= 2 ms added at the median.
  process  agora ProcessExecutor vs raw bwrap (hook: filled in by the process executor's author)
  docker   agora DockerExecutor vs raw docker SDK containers.run (hook: likewise)
The trivial task prints one line and exits 0. Runs alternate agora/raw so drift hits both alike.
Nothing is asserted: it reports.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import wasmtime  # noqa: E402

from agora.executors.interfaces import ExecRequest, Limits  # noqa: E402
from agora.executors.wasm import WasmExecutor  # noqa: E402
from tests.integration.executors.wasm_build import EXAMPLES, compile_c  # noqa: E402


@dataclass
class Comparison:
    engine: str
    agora_ms: list[float]
    raw_ms: list[float]
    raw_label: str
    target_added_ms: float | None = None


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def report(c: Comparison) -> None:
    a50, r50 = statistics.median(c.agora_ms), statistics.median(c.raw_ms)
    a99, r99 = pct(c.agora_ms, 99), pct(c.raw_ms, 99)
    added = a50 - r50
    print(f"\n== {c.engine}: {len(c.agora_ms)} runs each, trivial task, start to exit ==")
    print(f"  agora          median {a50:8.3f} ms   p99 {a99:8.3f} ms")
    print(f"  {c.raw_label:<14} median {r50:8.3f} ms   p99 {r99:8.3f} ms")
    ratio = a50 / r50 if r50 > 0 else float("inf")
    line = f"  added at median {added:+.3f} ms, ratio agora/raw {ratio:.2f}x"
    if c.target_added_ms is not None:
        verdict = "meets" if added <= c.target_added_ms else "MISSES"
        line += f"  ({verdict} the <= {c.target_added_ms:g} ms target)"
    print(line)


# -- wasm ---------------------------------------------------------------------------------------------


def wasm_module(work: Path) -> Path:
    out = EXAMPLES / "build" / "agora_test.wasm"
    src = EXAMPLES / "agora_test.c"
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        compile_c(src, out)
    return out


def raw_wasm_runner(module_path: Path, work_dir: Path) -> Callable[[], None]:
    """The reference: what any wasmtime-py embedder does, minus agora (same engine settings)."""
    config = wasmtime.Config()
    config.epoch_interruption = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module(engine, module_path.read_bytes())
    linker = wasmtime.Linker(engine)
    linker.define_wasi()

    def run_once() -> None:
        out: list[bytes] = []
        wasi = wasmtime.WasiConfig()
        wasi.argv = ["agora_test.wasm", "echo_args", "hello"]
        wasi.stdout_custom = out.append
        wasi.stderr_custom = out.append
        wasi.preopen_dir(str(work_dir / "inputs"), "/inputs", False)
        wasi.preopen_dir(str(work_dir / "outputs"), "/outputs", True)
        store = wasmtime.Store(engine)
        store.set_wasi(wasi)
        store.set_epoch_deadline(1_000_000)
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
        assert out and out[0].startswith(b"hello")
        del start, instance, store

    return run_once


def bench_wasm(n: int) -> Comparison | str:
    with tempfile.TemporaryDirectory(prefix="agora-bench-wasm-") as tmp:
        work = Path(tmp)
        module = wasm_module(work)
        wd = work / "task"
        (wd / "inputs").mkdir(parents=True)
        (wd / "outputs").mkdir()
        ex = WasmExecutor(work / "cache")
        raw = raw_wasm_runner(module, wd)

        def req(i: int) -> ExecRequest:
            return ExecRequest(
                task_id=f"b{i}",
                engine="wasm",
                work_dir=wd,
                module=str(module),
                args=["echo_args", "hello"],
                limits=Limits(timeout_s=30),
            )

        async def agora_all() -> tuple[list[float], list[float]]:
            warm = await ex.run(req(-1))  # compiles into the module cache, like the raw side's Module()
            assert warm.ok, warm
            a: list[float] = []
            r: list[float] = []
            for i in range(n):
                t0 = time.perf_counter()
                res = await ex.run(req(i))
                a.append((time.perf_counter() - t0) * 1000)
                assert res.ok and res.stdout == b"hello\n", res
                t0 = time.perf_counter()
                raw()
                r.append((time.perf_counter() - t0) * 1000)
            return a, r

        raw()
        a, r = asyncio.run(agora_all())
        left = ex.leftovers()
        if left:
            print(f"  warning: leftovers after the wasm bench: {left}")
        return Comparison("wasm", a, r, "raw wasmtime", target_added_ms=2.0)


# -- process ------------------------------------------------------------------------------------------


def _busybox_task(engine: str, wd: Path, i: int, image: str | None = None) -> ExecRequest:
    return ExecRequest(
        task_id=f"b{i}",
        engine=engine,  # type: ignore[arg-type]
        work_dir=wd,
        image=image,
        command=["busybox", "sh", "-c", "echo hello"],
        limits=Limits(timeout_s=30),
    )


def bench_process(n: int) -> Comparison | str:
    """agora ProcessExecutor (gate, cgroup, rlimits, bwrap with the full sandbox, log fan-out, disk
    watcher, cleanup) vs a bare `bwrap --unshare-all --ro-bind / / busybox sh -c 'echo hello'`
    through asyncio subprocess: the price of the sandbox's extras and the bookkeeping."""
    import os
    import shutil

    from agora.executors.cgroups import Cgroups
    from agora.executors.process import ProcessExecutor

    bwrap, busybox = shutil.which("bwrap"), shutil.which("busybox")
    if bwrap is None or busybox is None:
        return "bwrap or busybox not installed (apt-get install bubblewrap busybox-static)"
    stage = Path(tempfile.gettempdir()) / f"agora-bench-stage-{os.getpid()}"
    cgroups = Cgroups(parent=f"agora-bench-{os.getpid()}")
    ex = ProcessExecutor(cgroups=cgroups, stage_dir=stage)
    availability = ex.probe()
    if not availability.available:
        return f"process executor unavailable: {availability.reason}"
    raw_argv = [bwrap, "--unshare-all", "--die-with-parent", "--ro-bind", "/", "/", "--proc", "/proc"]
    raw_argv += ["--dev", "/dev", busybox, "sh", "-c", "echo hello"]

    async def raw() -> None:
        proc = await asyncio.create_subprocess_exec(*raw_argv, stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
        assert proc.returncode == 0 and out == b"hello\n"

    with tempfile.TemporaryDirectory(prefix="agora-bench-process-") as tmp:
        wd = Path(tmp) / "task"
        (wd / "inputs").mkdir(parents=True)
        (wd / "outputs").mkdir()

        async def both() -> tuple[list[float], list[float]]:
            a: list[float] = []
            r: list[float] = []
            for i in range(n):
                t0 = time.perf_counter()
                res = await ex.run(_busybox_task("process", wd, i))
                a.append((time.perf_counter() - t0) * 1000)
                assert res.ok and res.stdout == b"hello\n", res
                t0 = time.perf_counter()
                await raw()
                r.append((time.perf_counter() - t0) * 1000)
            return a, r

        try:
            a, r = asyncio.run(both())
        finally:
            for root in set(cgroups.detect().roots.values()):
                root.rmdir()
            stage.rmdir()
    return Comparison("process", a, r, "raw bwrap")


# -- docker -------------------------------------------------------------------------------------------


def bench_docker(n: int) -> Comparison | str:
    """agora DockerExecutor (create with every limit, attach, start, wait, inspect, remove) vs docker
    SDK `containers.run(image, 'echo hello', remove=True)`. Uses $DOCKER_HOST or the default socket;
    when no engine answers and we are root, a private dockerd (the test fixture's) with the test
    busybox image."""
    import os
    import shutil

    import docker

    from agora.executors.docker import DockerExecutor
    from tests.integration.executors.conftest_docker import TEST_IMAGE, Dockerd, busybox_image_tar

    n = min(n, 50)  # a container costs ~100 ms: keep the default run short
    ex = DockerExecutor()
    daemon: Dockerd | None = None
    if not ex.probe().available:
        dockerd, busybox = shutil.which("dockerd"), shutil.which("busybox")
        if dockerd is None or busybox is None or os.geteuid() != 0:
            return f"no docker engine: {ex.probe().reason}"
        daemon = Dockerd(dockerd)
        daemon.start()
        ex = DockerExecutor(daemon.url)
    client = docker.DockerClient(base_url=ex.base_url, timeout=60)
    try:
        if daemon is not None:
            repo, tag = TEST_IMAGE.split(":")
            client.api.import_image_from_data(
                busybox_image_tar(shutil.which("busybox") or ""), repository=repo, tag=tag
            )
        try:
            client.images.get(TEST_IMAGE)
        except docker.errors.ImageNotFound:
            return f"image {TEST_IMAGE} missing on {ex.base_url} (the private dockerd of the tests imports it)"

        def raw() -> None:
            out = client.containers.run(
                TEST_IMAGE, ["busybox", "sh", "-c", "echo hello"], remove=True, network_mode="none"
            )
            assert out == b"hello\n", out

        with tempfile.TemporaryDirectory(prefix="agora-bench-docker-") as tmp:
            wd = Path(tmp) / "task"
            (wd / "inputs").mkdir(parents=True)
            (wd / "outputs").mkdir()

            async def both() -> tuple[list[float], list[float]]:
                a: list[float] = []
                r: list[float] = []
                for i in range(n):
                    t0 = time.perf_counter()
                    res = await ex.run(_busybox_task("docker", wd, i, image=TEST_IMAGE))
                    a.append((time.perf_counter() - t0) * 1000)
                    assert res.ok and res.stdout == b"hello\n", res
                    t0 = time.perf_counter()
                    await asyncio.to_thread(raw)
                    r.append((time.perf_counter() - t0) * 1000)
                return a, r

            a, r = asyncio.run(both())
        return Comparison("docker", a, r, "raw SDK run")
    finally:
        client.close()
        ex.close()
        if daemon is not None:
            daemon.stop()
            daemon.remove()


ENGINES: dict[str, Callable[[int], Comparison | str]] = {
    "wasm": bench_wasm,
    "process": bench_process,
    "docker": bench_docker,
}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--smoke", action="store_true", help="a few runs per engine: checks the benchmark runs")
    ns = ap.parse_args(argv)
    if ns.smoke:
        ns.n = 3
    for name in ns.engines.split(","):
        fn = ENGINES.get(name.strip())
        if fn is None:
            print(f"unknown engine {name!r}; known: {', '.join(ENGINES)}", file=sys.stderr)
            return 2
        outcome = fn(ns.n)
        if isinstance(outcome, str):
            print(f"\n== {name}: skipped: {outcome}")
        else:
            report(outcome)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
