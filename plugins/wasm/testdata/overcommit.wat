;; overcommit.wat: a deliberately wrong policy, written against
;; docs/policy-abi.md (ABI version 2). It answers a well-formed decision
;; that ignores resources, constraints and priorities: every request is
;; placed on agent 0 (even when there are no agents), and every granted
;; allocation is named for revocation. The kernel must refuse what would
;; over-commit agent 0, break a constraint, or preempt without a placement
;; of strictly higher priority on the same agent; it may accept the rest.
;;
;; Memory: the input buffer starts at IN (1024); the decision is written
;; right after the input, 8-byte aligned: a 24-byte header, 8 bytes per
;; request (request i, agent 0) and 4 bytes per allocation. Imports
;; nothing.
;;
;; Assemble: wat2wasm overcommit.wat -o overcommit.wasm
(module
  (memory (export "memory") 1)

  (global $IN i32 (i32.const 1024))

  (func (export "dcos_policy_abi_version") (result i32) (i32.const 2))

  ;; ensure grows memory so that [0, end) is addressable; 0 on failure.
  (func $ensure (param $end i32) (result i32)
    (local $have i32)
    (local.set $have (i32.mul (memory.size) (i32.const 65536)))
    (if (i32.le_u (local.get $end) (local.get $have)) (then (return (i32.const 1))))
    (i32.ne
      (memory.grow
        (i32.shr_u
          (i32.add (i32.sub (local.get $end) (local.get $have)) (i32.const 65535))
          (i32.const 16)))
      (i32.const -1)))

  (func (export "dcos_alloc") (param $n i32) (result i32)
    (if (i32.eqz (call $ensure (i32.add (global.get $IN) (local.get $n))))
      (then (return (i32.const 0))))
    (global.get $IN))

  (func (export "dcos_place") (param $ptr i32) (param $len i32) (result i64)
    (local $nr i32) (local $nalloc i32) (local $out i32) (local $size i32)
    (local $p i32) (local $i i32)
    (local.set $nr (i32.load offset=20 (local.get $ptr)))
    (local.set $nalloc (i32.load offset=28 (local.get $ptr)))
    ;; out = align8(ptr + len)
    (local.set $out
      (i32.and (i32.add (i32.add (local.get $ptr) (local.get $len)) (i32.const 7)) (i32.const -8)))
    (local.set $size
      (i32.add (i32.const 24)
        (i32.add (i32.mul (local.get $nr) (i32.const 8)) (i32.mul (local.get $nalloc) (i32.const 4)))))
    (if (i32.eqz (call $ensure (i32.add (local.get $out) (local.get $size))))
      (then (unreachable)))
    ;; header: magic "DCO2", status 0, counts, no message
    (i32.store (local.get $out) (i32.const 0x324f4344))
    (i32.store offset=4 (local.get $out) (i32.const 0))
    (i32.store offset=8 (local.get $out) (local.get $nr))
    (i32.store offset=12 (local.get $out) (local.get $nalloc))
    (i32.store offset=16 (local.get $out) (i32.const 0))
    (i32.store offset=20 (local.get $out) (i32.const 0))
    ;; placements: (i, 0) for every request i
    (local.set $p (i32.add (local.get $out) (i32.const 24)))
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $nr)))
        (i32.store (local.get $p) (local.get $i))
        (i32.store offset=4 (local.get $p) (i32.const 0))
        (local.set $p (i32.add (local.get $p) (i32.const 8)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    ;; revocations: every allocation
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $nalloc)))
        (i32.store (local.get $p) (local.get $i))
        (local.set $p (i32.add (local.get $p) (i32.const 4)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (local.get $size))))
)
