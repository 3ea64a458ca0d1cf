;; A reactor whose _initialize never returns: the init deadline stops it.
(func (export "_initialize") (loop $forever (br $forever)))
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  i32.const 0)
