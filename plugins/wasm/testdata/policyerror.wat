;; policyerror.wat: dcos_place answers a policy error (status 1) with the
;; message "no luck". Not hostile: the host returns a *policy.PolicyError
;; and keeps the instance.
(module
  (memory (export "memory") 4)
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 2))
  ;; Input at 1024; the test batches are far smaller than the 4 pages.
  (func (export "dcos_alloc") (param i32) (result i32) (i32.const 1024))
  ;; magic "DCO2", status 1, no records, message of 7 bytes, then the message.
  (data (i32.const 64) "DCO2\01\00\00\00\00\00\00\00\00\00\00\00\00\00\00\00\07\00\00\00no luck")
  (func (export "dcos_place") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 64) (i64.const 32)) (i64.const 31)))
)
