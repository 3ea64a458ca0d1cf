;; Response starts inside memory but its length runs past the end.
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (call $respond (local.get $out) (i32.const 1024) (i32.const 0x100000)))
