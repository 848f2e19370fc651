"""Tiny WASI command modules written in WAT, compiled with wasmtime.wat2wasm: no compiler needed.

fd 3 is the preopened /inputs, fd 4 the preopened /outputs (the wasm executor's order).
"""

from __future__ import annotations

import wasmtime

_IMPORTS = """
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
"""

_HELPERS = """
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func $open (param $dir i32) (param $ptr i32) (param $len i32) (param $oflags i32) (result i32)
    (local $rights i64)
    (local.set $rights (select (i64.const 0x2) (i64.const 0x1fffffff) (i32.eq (local.get $dir) (i32.const 3))))
    (if (call $path_open (local.get $dir) (i32.const 0) (local.get $ptr) (local.get $len) (local.get $oflags)
          (local.get $rights) (local.get $rights) (i32.const 0) (i32.const 16))
      (then (call $proc_exit (i32.const 7))))
    (i32.load (i32.const 16)))
"""


def _data(offset: int, text: str) -> str:
    escaped = "".join(f"\\{b:02x}" for b in text.encode())
    return f'  (data (i32.const {offset}) "{escaped}")\n'


def hello(message: str = "hello from wat", output: str = "hello.txt", content: str = "hello output\n") -> bytes:
    """Prints `message` on stdout and a line on stderr, writes `content` to /outputs/<output>."""
    line = message + "\n"
    wat = "(module" + _IMPORTS + _HELPERS
    wat += _data(100, output) + _data(1000, line) + _data(2000, content) + _data(3000, "to stderr\n")
    wat += f"""
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 1000) (i32.const {len(line.encode())}))
    (call $write (i32.const 2) (i32.const 3000) (i32.const 10))
    (call $write (call $open (i32.const 4) (i32.const 100) (i32.const {len(output.encode())}) (i32.const 9))
                 (i32.const 2000) (i32.const {len(content.encode())}))))
"""
    return wasmtime.wat2wasm(wat)


def cat_input(name: str) -> bytes:
    """Copies /inputs/<name> (up to 4 KiB) to stdout and to /outputs/copy.txt."""
    wat = "(module" + _IMPORTS + _HELPERS + _data(100, name) + _data(200, "copy.txt")
    wat += f"""
  (func (export "_start") (local $in i32) (local $n i32)
    (local.set $in (call $open (i32.const 3) (i32.const 100) (i32.const {len(name.encode())}) (i32.const 0)))
    (i32.store (i32.const 0) (i32.const 4096))
    (i32.store (i32.const 4) (i32.const 4096))
    (drop (call $fd_read (local.get $in) (i32.const 0) (i32.const 1) (i32.const 8)))
    (local.set $n (i32.load (i32.const 8)))
    (call $write (i32.const 1) (i32.const 4096) (local.get $n))
    (call $write (call $open (i32.const 4) (i32.const 200) (i32.const 8) (i32.const 9))
                 (i32.const 4096) (local.get $n))))
"""
    return wasmtime.wat2wasm(wat)


def trap() -> bytes:
    return wasmtime.wat2wasm('(module (memory (export "memory") 1) (func (export "_start") unreachable))')


def spin() -> bytes:
    """Prints one line, then loops forever (ends only by timeout or cancel)."""
    wat = "(module" + _IMPORTS + _HELPERS + _data(1000, "spinning\n")
    wat += """
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 1000) (i32.const 9))
    (loop $forever (br $forever))))
"""
    return wasmtime.wat2wasm(wat)


def exit_with(code: int) -> bytes:
    wat = "(module" + _IMPORTS + _data(1000, "failing\n")
    wat += f"""
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 1000))
    (i32.store (i32.const 4) (i32.const 8))
    (drop (call $fd_write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const {code}))))
"""
    return wasmtime.wat2wasm(wat)


def many_files(n: int) -> bytes:
    """Writes `n` one-byte files /outputs/f00000, f00001, ... (n < 100000)."""
    close = '  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))\n'
    imports = _IMPORTS.replace("  (memory", close + "  (memory")
    wat = "(module" + imports + _HELPERS + _data(100, "f00000") + _data(200, "x")
    digits = "".join(
        f"""
      (i32.store8 (i32.const {100 + pos}) (i32.add (i32.const 48) (i32.rem_u (local.get $d) (i32.const 10))))
      (local.set $d (i32.div_u (local.get $d) (i32.const 10)))"""
        for pos in range(5, 0, -1)
    )
    wat += f"""
  (func (export "_start") (local $i i32) (local $d i32) (local $fd i32)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.const {n})))
        (local.set $d (local.get $i)){digits}
        (local.set $fd (call $open (i32.const 4) (i32.const 100) (i32.const 6) (i32.const 9)))
        (call $write (local.get $fd) (i32.const 200) (i32.const 1))
        (drop (call $fd_close (local.get $fd)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))))
"""
    return wasmtime.wat2wasm(wat)


__all__ = ["cat_input", "exit_with", "hello", "many_files", "spin", "trap"]
