;; Infinite loop in the handler: stopped by the epoch deadline (timeout)
;; or by fuel (fuel_exhausted).
(func (export "handler") (param $p i32) (param $l i32) (param $out i32) (result i32)
  (loop $forever (br $forever))
  i32.const 0)
