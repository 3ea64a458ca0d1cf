;; Grows memory 16 pages at a time until the limiter refuses, then traps
;; the way language runtimes do on out-of-memory.
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (loop $grow
    (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
  unreachable)
