;; Traps with unreachable.
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  unreachable)
