;; A JSON response with a status outside 100-599.
(data (i32.const 1024) "{\"status\":700}")
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (call $respond (local.get $out) (i32.const 1024) (i32.const {{LEN1024}})))
