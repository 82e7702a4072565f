;; memgrow.wat: hostile: dcos_place grows memory 1 MiB at a time until
;; memory.grow fails (at the host's cap), then traps, as an allocator
;; that runs out does. The host must report out of memory.
(module
  (memory (export "memory") 4)
  (func (export "dcos_policy_abi_version") (result i32) (i32.const 2))
  ;; Input at 1024; the test batches are far smaller than the 4 pages.
  (func (export "dcos_alloc") (param i32) (result i32) (i32.const 1024))
  (func (export "dcos_place") (param i32 i32) (result i64)
    (loop $grow
      (br_if $grow (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    (unreachable))
)
