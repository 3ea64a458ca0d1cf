;; Logs 10 000 lines of 100 bytes (1 MB) and then answers normally: the
;; runner keeps 64 KiB and the guest is not harmed.
(import "alga" "log_info" (func $log (param i32 i32)))
(data (i32.const 1024) "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")
(data (i32.const 2048) "{\"status\":200}")
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (local $i i32)
  (loop $again
    (call $log (i32.const 1024) (i32.const 100))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $again (i32.lt_u (local.get $i) (i32.const 10000))))
  (call $respond (local.get $out) (i32.const 2048) (i32.const {{LEN2048}})))
