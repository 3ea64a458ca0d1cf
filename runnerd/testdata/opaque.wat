;; Output that is not JSON at all.
(data (i32.const 1024) "plain text, not json")
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (call $respond (local.get $out) (i32.const 1024) (i32.const {{LEN1024}})))
