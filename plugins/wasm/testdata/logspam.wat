;; logspam.wat: hostile: each dcos_place logs 100 info messages of 8000
;; bytes ("spam" and zeros), then answers an empty decision. The host must
;; truncate each to 4 KiB and drop all but 64.
(module
  (import "dcos" "log" (func $log (param i32 i32 i32)))
  (memory (export "memory") 4)
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 2))
  ;; Input at 1024; the test batches are far smaller than the 4 pages.
  (func (export "dcos_alloc") (param i32) (result i32) (i32.const 1024))
  (data (i32.const 32) "DCO2") ;; then 20 zero bytes: status OK, no records
  (data (i32.const 64) "spam")
  (func (export "dcos_place") (param i32 i32) (result i64)
    (local $i i32)
    (loop $again
      (call $log (i32.const 0) (i32.const 64) (i32.const 8000))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $again (i32.lt_u (local.get $i) (i32.const 100))))
    (i64.or (i64.shl (i64.const 32) (i64.const 32)) (i64.const 24)))
)
