;; Replies "[" + request JSON + "]": not a JSON object, so it is passed
;; through as an opaque 200 body and tests can read the request back.
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (local $buf i32)
  (local.set $buf (call $alloc (i32.add (local.get $l) (i32.const 2))))
  (i32.store8 (local.get $buf) (i32.const 91))
  (memory.copy (i32.add (local.get $buf) (i32.const 1)) (local.get $p) (local.get $l))
  (i32.store8 (i32.add (local.get $buf) (i32.add (local.get $l) (i32.const 1))) (i32.const 93))
  (call $respond (local.get $out) (local.get $buf) (i32.add (local.get $l) (i32.const 2))))
