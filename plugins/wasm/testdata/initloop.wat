;; initloop.wat: hostile: _initialize never returns. Load must stop it at
;; the deadline and refuse the module.
(module
  (memory (export "memory") 4)
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 2))
  ;; Input at 1024; the test batches are far smaller than the 4 pages.
  (func (export "dcos_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "_initialize")
    (loop $forever (br $forever)))
  (func (export "dcos_place") (param i32 i32) (result i64) (i64.const 0))
)
