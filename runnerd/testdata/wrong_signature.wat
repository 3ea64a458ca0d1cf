;; handler has the wrong signature.
(func (export "handler") (param $p i32) (result i32)
  i32.const 0)
