;; A reactor: _initialize sets a global the handler depends on, so a handler
;; that runs without _initialize first traps.
(global $ready (mut i32) (i32.const 0))
(data (i32.const 1024) "{\"status\":200,\"body_b64\":\"aW5pdA==\"}")
(func (export "_initialize") (global.set $ready (i32.const 1)))
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (if (i32.eqz (global.get $ready)) (then unreachable))
  (call $respond (local.get $out) (i32.const 1024) (i32.const {{LEN1024}})))
