;; abiv1.wat: invalid: reports ABI version 1, which this kernel no longer
;; speaks (version 2 added ports to every resources record).
(module
  (memory (export "memory") 1)
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 1))
  (func (export "dcos_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "dcos_place") (param i32 i32) (result i64) (i64.const 0))
)
