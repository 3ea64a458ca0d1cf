;; A slow well-behaved handler: busy-waits {{MS}} ms of wall-clock time
;; (WASI clock_time_get, monotonic), then answers 200 "slow". Drain tests
;; use it for a call that is in flight when SIGTERM arrives and completes.
(import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
(data (i32.const 2048) "{\"status\":200,\"body_b64\":\"c2xvdw==\"}")
(func $now (result i64)
  (drop (call $clock (i32.const 1) (i64.const 1000) (i32.const 512)))
  (i64.load (i32.const 512)))
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (local $end i64)
  (local.set $end (i64.add (call $now) (i64.mul (i64.const {{MS}}) (i64.const 1000000))))
  (block $done
    (loop $wait
      (br_if $done (i64.ge_u (call $now) (local.get $end)))
      (br $wait)))
  (call $respond (local.get $out) (i32.const 2048) (i32.const {{LEN2048}})))
