;; outofbounds.wat: hostile: dcos_place answers (ptr, len) = (0xfff00000,
;; 4096), far outside its 4-page memory.
(module
  (memory (export "memory") 4)
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 2))
  ;; Input at 1024; the test batches are far smaller than the 4 pages.
  (func (export "dcos_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "dcos_place") (param i32 i32) (result i64)
    (i64.or (i64.shl (i64.const 0xfff00000) (i64.const 32)) (i64.const 4096)))
)
