;; Response pointer far outside the 1-page memory.
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (call $respond (local.get $out) (i32.const 0x7fff0000) (i32.const 100)))
