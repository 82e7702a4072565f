;; wants.wat: declares with dcos_policy_wants that it reads no optional
;; part of the batch (no granted allocations), and answers a policy error
;; "allocations sent" if the batch has any; else it places nothing.
(module
  (memory (export "memory") 4)
  (data (i32.const 536) "allocations sent")
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 2))
  (func (export "dcos_policy_wants") (result i32) (i32.const 0))
  ;; Input at 1024; the test batches are far smaller than the 4 pages.
  (func (export "dcos_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "dcos_place") (param $ptr i32) (param $len i32) (result i64)
    (i32.store (i32.const 512) (i32.const 0x324f4344)) ;; "DCO2"
    (if (i32.load offset=28 (local.get $ptr)) ;; n_allocations
      (then
        (i32.store (i32.const 516) (i32.const 1))  ;; status: policy error
        (i32.store (i32.const 532) (i32.const 16)) ;; message_len
        (return (i64.const 0x0000020000000028))))  ;; 512 << 32 | 40
    (i32.store (i32.const 516) (i32.const 0))
    (i32.store (i32.const 532) (i32.const 0))
    (i64.const 0x0000020000000018))                ;; 512 << 32 | 24
)
