;; abiv3.wat: invalid: reports ABI version 3, a version from the future
;; that this kernel does not speak.
(module
  (memory (export "memory") 1)
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 3))
  (func (export "dcos_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "dcos_place") (param i32 i32) (result i64) (i64.const 0))
)
