;; Leaves marks in its memory: fails (handler returns 1) if it finds a mark
;; from an earlier call, then writes one low in memory and one past 16 MiB
;; (grown), for tests that a fresh instance in a reused pool slot starts
;; from the module's own memory image (SPEC §6.5).
(data (i32.const 1024) "{\"status\":200,\"body_b64\":\"\"}")
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (if (i32.lt_u (memory.size) (i32.const 300))
    (then (drop (memory.grow (i32.sub (i32.const 300) (memory.size))))))
  (if (i32.or (i32.load (i32.const 4096)) (i32.load (i32.const 0x1100000)))
    (then (return (i32.const 1))))
  (i32.store (i32.const 4096) (i32.const 7))
  (i32.store (i32.const 0x1100000) (i32.const 7))
  (call $respond (local.get $out) (i32.const 1024) (i32.const {{LEN1024}})))
