"""The conformance programs as busybox `sh` snippets, shared by the process and docker catalogs.

Each program runs as `busybox sh -c SCRIPT NAME ARGS...`, with the task's work dir at /work (the
process sandbox and the container mount it there), so the same text is tested on both engines.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agora.executors.interfaces import Engine, ExecRequest, Limits
from tests.integration.executors.conformance import NetworkMode

SCRIPTS: dict[str, str] = {
    "echo_args": 'for a in "$@"; do printf "%s\\n" "$a"; done; echo stderr-line >&2',
    "print_env": 'v=$(env | grep -m1 "^$1=") || exit 4; printf "%s\\n" "$v"',
    "cat_stdin": "cat",
    "cat_input": 'cat "/work/inputs/$1" 2>/dev/null || exit 5',
    "write_input": (
        'w=0; (printf x >> "/work/inputs/$1") 2>/dev/null && w=1; '
        '(printf x > "/work/inputs/$1.new") 2>/dev/null && w=1; '
        "if [ $w = 0 ]; then echo denied; exit 0; fi; echo written; exit 6"
    ),
    "write_output": 'printf "%s" "$2" > "/work/outputs/$1"',
    "exit_code": 'exit "$1"',
    "sleep_forever": "echo started; while :; do sleep 1000; done",
    "ignore_sigterm": "trap '' TERM; echo started; while :; do sleep 1000; done",
    "alloc_memory": 'x=$(head -c $(($1 * 1048576)) /dev/zero | tr "\\0" a) && echo "allocated ${#x} bytes"',
    "fill_disk": 'dd if=/dev/zero of=/work/outputs/fill bs=1048576 count="$1" 2>/dev/null && echo filled',
    "connect_tcp": 'nc -w 5 127.0.0.1 "$1" </dev/null && echo connected',
    "fork_bomb": "b() { b & b; }; b",
    "many_lines": 'i=0; while [ $i -lt "$1" ]; do echo "line $i"; i=$((i + 1)); done',
    # engine-specific checks (test_process.py, test_docker.py)
    "whoami": 'echo "uid=$(id -u) gid=$(id -g)"; grep -E "^Cap(Prm|Eff|Bnd|Amb):" /proc/self/status',
    "write_system": '(echo x > "$1") 2>/dev/null && echo written || echo denied',
    "net_ifaces": "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '",
    "nested_userns": "unshare -r id -u 2>/dev/null || echo denied",
    "pid1_cmdline": "tr '\\0' ' ' < /proc/1/cmdline; echo",
    "spawn_and_exit": 'i=0; while [ $i -lt "$1" ]; do sleep 1000 & i=$((i + 1)); done; echo spawned',
}


@dataclass
class BusyboxCatalog:
    engine: Engine
    network_mode: NetworkMode
    image: str | None = None  # docker
    busybox: str = "busybox"  # process: found on the sandbox's PATH
    without: frozenset[str] = frozenset()

    def supports(self, program: str) -> bool:
        return program in SCRIPTS and program not in self.without

    def request(
        self,
        program: str,
        work_dir: Path,
        args: Sequence[str] = (),
        *,
        task_id: str,
        env: Mapping[str, str] | None = None,
        stdin: bytes | None = None,
        limits: Limits | None = None,
        network: bool = False,
    ) -> ExecRequest:
        return ExecRequest(
            task_id=task_id,
            engine=self.engine,
            work_dir=work_dir,
            image=self.image,
            command=[self.busybox, "sh", "-c", SCRIPTS[program], program],
            args=list(args),
            env=dict(env or {}),
            stdin=stdin,
            limits=limits or Limits(timeout_s=60.0),
            network=network,
        )
