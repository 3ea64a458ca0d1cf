;; The handler reports failure with code 7.
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  i32.const 7)
