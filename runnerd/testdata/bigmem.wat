(module
  ;; Declares 2000 pages (125 MiB) of initial memory: over a 64 MiB cap
  ;; before any code runs.
  (memory (export "memory") 2000)
  (func (export "alloc") (param i32) (result i32) i32.const 0)
  (func (export "handler") (param i32 i32 i32) (result i32) i32.const 0))
