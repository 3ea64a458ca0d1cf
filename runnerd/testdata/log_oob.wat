;; log_warn with a pointer outside memory: traps the guest.
(import "alga" "log_warn" (func $log (param i32 i32)))
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (call $log (i32.const 0x7fff0000) (i32.const 10))
  i32.const 0)
