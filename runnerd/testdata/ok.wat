;; A well-behaved handler: a fixed JSON response with status, headers, body.
(data (i32.const 1024) "{\"status\":201,\"headers\":{\"content-type\":\"text/plain\",\"X-Ext-Trace\":\"abc\"},\"body_b64\":\"aGVsbG8=\"}")
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (call $respond (local.get $out) (i32.const 1024) (i32.const {{LEN1024}})))
