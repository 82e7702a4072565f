;; wrongsig.wat: invalid: dcos_alloc takes an i64, dcos_policy_wants takes
;; an i32, and the log import has the wrong type.
(module
  (import "dcos" "log" (func $log (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 2))
  (func (export "dcos_alloc") (param i64) (result i32) (i32.const 1024))
  (func (export "dcos_place") (param i32 i32) (result i64) (i64.const 0))
  (func (export "dcos_policy_wants") (param i32) (result i32) (i32.const 0))
)
