;; unknownimport.wat: invalid: imports env.now, which the host does not
;; provide (a clock would break determinism).
(module
  (import "env" "now" (func $now (result i64)))
  (memory (export "memory") 4)
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 2))
  ;; Input at 1024; the test batches are far smaller than the 4 pages.
  (func (export "dcos_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "dcos_place") (param i32 i32) (result i64) (call $now))
)
