;; Imports WASI and prints to stdout and stderr: both are captured into the
;; log stream, nothing reaches the runner's own stdout.
(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
(data (i32.const 1024) "hello from stdout\n")
(data (i32.const 1100) "oops on stderr\n")
(data (i32.const 2048) "{\"status\":200}")
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  ;; iovec at 512: {ptr,len}
  (i32.store (i32.const 512) (i32.const 1024))
  (i32.store (i32.const 516) (i32.const 18))
  (drop (call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 600)))
  (i32.store (i32.const 512) (i32.const 1100))
  (i32.store (i32.const 516) (i32.const 15))
  (drop (call $fd_write (i32.const 2) (i32.const 512) (i32.const 1) (i32.const 600)))
  (call $respond (local.get $out) (i32.const 2048) (i32.const {{LEN2048}})))
