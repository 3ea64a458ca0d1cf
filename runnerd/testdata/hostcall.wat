;; Template: calls alga.{{IMPORT}} {{REPEAT}} times with the JSON request
;; {{REQ}} and replies "[<status>,<last reply>]" (opaque, so the test can
;; read both back). {{REQPTR}} and {{OUTPTR}} let tests aim the request and
;; the out area outside memory.
(import "alga" "{{IMPORT}}" (func $call (param i32 i32 i32) (result i32)))
(data (i32.const 1024) "{{REQ}}")
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (local $st i32) (local $hout i32) (local $r i32) (local $rl i32) (local $buf i32) (local $i i32)
  (local.set $hout (call $alloc (i32.const 8)))
  (loop $again
    (local.set $st (call $call (i32.const {{REQPTR}}) (i32.const {{REQLEN}}) (i32.add (local.get $hout) (i32.const {{OUTPTR}}))))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $again (i32.lt_u (local.get $i) (i32.const {{REPEAT}}))))
  (local.set $r (i32.load (local.get $hout)))
  (local.set $rl (i32.load offset=4 (local.get $hout)))
  (local.set $buf (call $alloc (i32.add (local.get $rl) (i32.const 4))))
  (i32.store8 (local.get $buf) (i32.const 91))
  (i32.store8 offset=1 (local.get $buf) (i32.add (i32.const 48) (local.get $st)))
  (i32.store8 offset=2 (local.get $buf) (i32.const 44))
  (memory.copy (i32.add (local.get $buf) (i32.const 3)) (local.get $r) (local.get $rl))
  (i32.store8 (i32.add (local.get $buf) (i32.add (local.get $rl) (i32.const 3))) (i32.const 93))
  (call $respond (local.get $out) (local.get $buf) (i32.add (local.get $rl) (i32.const 4))))
