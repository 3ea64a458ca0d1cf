;; Writes 64 KiB to stdout 2000 times (128 MiB) and answers normally: the
;; runner keeps the log budget's worth and discards the rest without
;; touching disk.
(import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
(data (i32.const 2048) "{\"status\":200}")
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (local $i i32)
  (drop (memory.grow (i32.const 2)))
  ;; iovec at 512: 64 KiB starting at 65536 (zeros, printed as NULs)
  (i32.store (i32.const 512) (i32.const 65536))
  (i32.store (i32.const 516) (i32.const 65536))
  (loop $again
    (drop (call $fd_write (i32.const 1) (i32.const 512) (i32.const 1) (i32.const 600)))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $again (i32.lt_u (local.get $i) (i32.const 2000))))
  (call $respond (local.get $out) (i32.const 2048) (i32.const {{LEN2048}})))
