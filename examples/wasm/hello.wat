;; hello.wat: the smallest useful agora wasm task, in WebAssembly text (agora compiles .wat modules when
;; you submit them, so no compiler is needed). It prints a greeting and writes /outputs/greeting.txt
;; (file descriptor 4 is the preopened /outputs directory in agora's wasm executor).
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "greeting.txt")
  (data (i32.const 200) "hello from an agora wasm task\n")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (func (export "_start")
    (call $write (i32.const 1) (i32.const 200) (i32.const 30))
    (drop (call $path_open (i32.const 4) (i32.const 0) (i32.const 100) (i32.const 12) (i32.const 9)
      (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 16)))
    (call $write (i32.load (i32.const 16)) (i32.const 200) (i32.const 30))))
