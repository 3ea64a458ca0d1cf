;; Claims a 9 MiB response that really is inside memory: over the 8 MiB cap.
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (drop (memory.grow (i32.const 160)))
  (call $respond (local.get $out) (i32.const 0) (i32.const 9437184)))
