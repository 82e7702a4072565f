;; firstfit.wat: a first-fit allocation policy written by hand against
;; docs/policy-abi.md (ABI version 2) and nothing else.
;;
;; Supports: every request, in batch order, goes to the first agent (in
;; batch order) whose free resources (cpu, mem, disk, ports), less what this call
;; already placed there, fit it and whose labels satisfy all of its
;; constraints: OP_EQUALS, OP_NOT_EQUALS and OP_IN are all honoured.
;; A request that fits nowhere is reported unplaced: verdict Never when no
;; agent's *total* resources fit it among the agents matching its
;; constraints, NotNow otherwise.
;; Ignores: roles, weights, quota, priorities (beyond the batch order),
;; allocations (no preemption), the seed. Imports nothing (no WASI, no log).
;; On a batch with a bad magic or version, or when memory cannot grow, it
;; answers a policy error (status 1) with a message.
;;
;; Memory: the input buffer starts at IN (1024). dcos_place lays out after
;; the input, 8-byte aligned: the decision (24-byte header + 8 bytes per
;; request), the running free resources (32 bytes per agent), and one i32
;; result per request (agent index, -1 NotNow, -2 Never).
;;
;; Assemble: wat2wasm firstfit.wat -o firstfit.wasm
(module
  (memory (export "memory") 1)

  (global $IN i32 (i32.const 1024))
  ;; Section addresses of the current batch.
  (global $agents (mut i32) (i32.const 0))
  (global $reqs (mut i32) (i32.const 0))
  (global $labels (mut i32) (i32.const 0))
  (global $strs (mut i32) (i32.const 0))
  (global $cons (mut i32) (i32.const 0))
  (global $refs (mut i32) (i32.const 0))
  (global $na (mut i32) (i32.const 0))
  (global $nr (mut i32) (i32.const 0))
  (global $free (mut i32) (i32.const 0))

  (data (i32.const 16) "bad batch header")      ;; 16 bytes at 16
  (data (i32.const 64) "out of memory")         ;; 13 bytes at 64

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

  ;; error writes a status-1 decision with the message at [msg, +n) at out.
  (func $error (param $out i32) (param $msg i32) (param $n i32) (result i64)
    (i32.store (local.get $out) (i32.const 0x324f4344))
    (i32.store offset=4 (local.get $out) (i32.const 1))
    (i64.store offset=8 (local.get $out) (i64.const 0))
    (i32.store offset=16 (local.get $out) (i32.const 0))
    (i32.store offset=20 (local.get $out) (local.get $n))
    (memory.copy (i32.add (local.get $out) (i32.const 24)) (local.get $msg) (local.get $n))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.add (i32.const 24) (local.get $n)))))

  ;; streq compares the strings named by two 8-byte references.
  (func $streq (param $a i32) (param $b i32) (result i32)
    (local $n i32) (local $pa i32) (local $pb i32) (local $i i32)
    (local.set $n (i32.load offset=4 (local.get $a)))
    (if (i32.ne (local.get $n) (i32.load offset=4 (local.get $b))) (then (return (i32.const 0))))
    (local.set $pa (i32.add (global.get $strs) (i32.load (local.get $a))))
    (local.set $pb (i32.add (global.get $strs) (i32.load (local.get $b))))
    (if (i32.eq (local.get $pa) (local.get $pb)) (then (return (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.ne (i32.load8_u (i32.add (local.get $pa) (local.get $i)))
                    (i32.load8_u (i32.add (local.get $pb) (local.get $i))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))

  ;; label returns the address of the value reference of agent $a's label
  ;; whose key equals the reference at $key, or 0 when it is not set.
  (func $label (param $a i32) (param $key i32) (result i32)
    (local $p i32) (local $end i32)
    (local.set $p (i32.add (global.get $labels)
      (i32.mul (i32.load offset=72 (local.get $a)) (i32.const 16))))
    (local.set $end (i32.add (local.get $p)
      (i32.mul (i32.load offset=76 (local.get $a)) (i32.const 16))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (if (call $streq (local.get $p) (local.get $key))
          (then (return (i32.add (local.get $p) (i32.const 8)))))
        (local.set $p (i32.add (local.get $p) (i32.const 16)))
        (br $next)))
    (i32.const 0))

  ;; matches reports whether agent $a satisfies every constraint of
  ;; request $r (both record addresses).
  (func $matches (param $a i32) (param $r i32) (result i32)
    (local $c i32) (local $end i32) (local $op i32) (local $nv i32)
    (local $v i32) (local $vals i32) (local $j i32) (local $ok i32)
    (local.set $c (i32.add (global.get $cons)
      (i32.mul (i32.load offset=44 (local.get $r)) (i32.const 24))))
    (local.set $end (i32.add (local.get $c)
      (i32.mul (i32.load offset=48 (local.get $r)) (i32.const 24))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $c) (local.get $end)))
        (local.set $op (i32.load (local.get $c)))
        (local.set $nv (i32.load offset=4 (local.get $c)))
        (local.set $vals (i32.add (global.get $refs)
          (i32.mul (i32.load offset=16 (local.get $c)) (i32.const 8))))
        (local.set $v (call $label (local.get $a) (i32.add (local.get $c) (i32.const 8))))
        (if (i32.eq (local.get $op) (i32.const 1)) ;; EQUALS: set and == values[0]
          (then
            (if (i32.or (i32.eqz (local.get $v)) (i32.eqz (local.get $nv)))
              (then (return (i32.const 0))))
            (if (i32.eqz (call $streq (local.get $v) (local.get $vals)))
              (then (return (i32.const 0))))))
        (if (i32.eq (local.get $op) (i32.const 2)) ;; NOT_EQUALS: unset, no value, or != values[0]
          (then
            (if (i32.and (i32.ne (local.get $v) (i32.const 0)) (i32.ne (local.get $nv) (i32.const 0)))
              (then
                (if (call $streq (local.get $v) (local.get $vals))
                  (then (return (i32.const 0))))))))
        (if (i32.eq (local.get $op) (i32.const 3)) ;; IN: set and one of values
          (then
            (if (i32.eqz (local.get $v)) (then (return (i32.const 0))))
            (local.set $ok (i32.const 0))
            (local.set $j (i32.const 0))
            (block $found
              (loop $val
                (br_if $found (i32.ge_u (local.get $j) (local.get $nv)))
                (if (call $streq (local.get $v)
                      (i32.add (local.get $vals) (i32.mul (local.get $j) (i32.const 8))))
                  (then (local.set $ok (i32.const 1)) (br $found)))
                (local.set $j (i32.add (local.get $j) (i32.const 1)))
                (br $val)))
            (if (i32.eqz (local.get $ok)) (then (return (i32.const 0))))))
        (if (i32.or (i32.lt_u (local.get $op) (i32.const 1)) (i32.gt_u (local.get $op) (i32.const 3)))
          (then (return (i32.const 0)))) ;; unknown operator: never matches
        (local.set $c (i32.add (local.get $c) (i32.const 24)))
        (br $next)))
    (i32.const 1))

  ;; fits reports whether the resources at $need fit in those at $have
  ;; (four i64: millicpu, mem, disk, ports).
  (func $fits (param $have i32) (param $need i32) (result i32)
    (i32.and
      (i32.and
        (i64.le_s (i64.load (local.get $need)) (i64.load (local.get $have)))
        (i64.le_s (i64.load offset=8 (local.get $need)) (i64.load offset=8 (local.get $have))))
      (i32.and
        (i64.le_s (i64.load offset=16 (local.get $need)) (i64.load offset=16 (local.get $have)))
        (i64.le_s (i64.load offset=24 (local.get $need)) (i64.load offset=24 (local.get $have))))))

  (func (export "dcos_place") (param $in i32) (param $len i32) (result i64)
    (local $out i32) (local $res i32) (local $end i32)
    (local $i i32) (local $j i32) (local $r i32) (local $a i32) (local $f i32)
    (local $verdict i32) (local $p i32) (local $np i32) (local $nu i32)

    ;; The decision goes after the input, 8-byte aligned.
    (local.set $out (i32.and (i32.add (i32.add (local.get $in) (local.get $len)) (i32.const 7)) (i32.const -8)))
    (if (i32.eqz (call $ensure (i32.add (local.get $out) (i32.const 64))))
      (then (unreachable)))
    (if (i32.or
          (i32.lt_u (local.get $len) (i32.const 96))
          (i32.or
            (i32.ne (i32.load (local.get $in)) (i32.const 0x32504344))   ;; "DCP2"
            (i32.ne (i32.load offset=4 (local.get $in)) (i32.const 2)))) ;; version
      (then (return (call $error (local.get $out) (i32.const 16) (i32.const 16)))))

    ;; Section addresses, from the header counts.
    (global.set $na (i32.load offset=16 (local.get $in)))
    (global.set $nr (i32.load offset=20 (local.get $in)))
    (global.set $agents (i32.add (local.get $in) (i32.const 96)))
    (global.set $reqs (i32.add (global.get $agents) (i32.mul (global.get $na) (i32.const 80))))
    (global.set $cons
      (i32.add
        (i32.add
          (i32.add (global.get $reqs) (i32.mul (global.get $nr) (i32.const 56)))
          (i32.mul (i32.load offset=24 (local.get $in)) (i32.const 80)))   ;; roles
        (i32.mul (i32.load offset=28 (local.get $in)) (i32.const 48))))    ;; allocations
    (global.set $labels (i32.add (global.get $cons) (i32.mul (i32.load offset=32 (local.get $in)) (i32.const 24))))
    (global.set $refs (i32.add (global.get $labels) (i32.mul (i32.load offset=40 (local.get $in)) (i32.const 16))))
    (global.set $strs (i32.add (global.get $refs) (i32.mul (i32.load offset=36 (local.get $in)) (i32.const 8))))

    ;; Scratch: free resources per agent, then a result per request.
    (global.set $free (i32.add (i32.add (local.get $out) (i32.const 24)) (i32.mul (global.get $nr) (i32.const 8))))
    (local.set $res (i32.add (global.get $free) (i32.mul (global.get $na) (i32.const 32))))
    (local.set $end (i32.add (local.get $res) (i32.mul (global.get $nr) (i32.const 4))))
    (if (i32.eqz (call $ensure (local.get $end)))
      (then (return (call $error (local.get $out) (i32.const 64) (i32.const 13)))))

    ;; free[i] = agents[i].Free
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (global.get $na)))
        (memory.copy
          (i32.add (global.get $free) (i32.mul (local.get $i) (i32.const 32)))
          (i32.add (i32.add (global.get $agents) (i32.mul (local.get $i) (i32.const 80))) (i32.const 32))
          (i32.const 32))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))

    ;; First fit.
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (global.get $nr)))
        (local.set $r (i32.add (global.get $reqs) (i32.mul (local.get $i) (i32.const 56))))
        (local.set $verdict (i32.const -2)) ;; Never until an agent could ever take it
        (local.set $j (i32.const 0))
        (block $placed
          (loop $agent
            (br_if $placed (i32.ge_u (local.get $j) (global.get $na)))
            (local.set $a (i32.add (global.get $agents) (i32.mul (local.get $j) (i32.const 80))))
            (if (call $matches (local.get $a) (local.get $r))
              (then
                (if (call $fits (local.get $a) (local.get $r)) ;; Total fits: not Never
                  (then (local.set $verdict (i32.const -1))))
                (local.set $f (i32.add (global.get $free) (i32.mul (local.get $j) (i32.const 32))))
                (if (call $fits (local.get $f) (local.get $r))
                  (then
                    (i64.store (local.get $f) (i64.sub (i64.load (local.get $f)) (i64.load (local.get $r))))
                    (i64.store offset=8 (local.get $f) (i64.sub (i64.load offset=8 (local.get $f)) (i64.load offset=8 (local.get $r))))
                    (i64.store offset=16 (local.get $f) (i64.sub (i64.load offset=16 (local.get $f)) (i64.load offset=16 (local.get $r))))
                    (i64.store offset=24 (local.get $f) (i64.sub (i64.load offset=24 (local.get $f)) (i64.load offset=24 (local.get $r))))
                    (local.set $verdict (local.get $j))
                    (br $placed)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br $agent)))
        (i32.store (i32.add (local.get $res) (i32.mul (local.get $i) (i32.const 4))) (local.get $verdict))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))

    ;; Placements, then unplaced records, after the 24-byte header.
    (local.set $p (i32.add (local.get $out) (i32.const 24)))
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (global.get $nr)))
        (local.set $verdict (i32.load (i32.add (local.get $res) (i32.mul (local.get $i) (i32.const 4)))))
        (if (i32.ge_s (local.get $verdict) (i32.const 0))
          (then
            (i32.store (local.get $p) (local.get $i))
            (i32.store offset=4 (local.get $p) (local.get $verdict))
            (local.set $p (i32.add (local.get $p) (i32.const 8)))
            (local.set $np (i32.add (local.get $np) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (global.get $nr)))
        (local.set $verdict (i32.load (i32.add (local.get $res) (i32.mul (local.get $i) (i32.const 4)))))
        (if (i32.lt_s (local.get $verdict) (i32.const 0))
          (then
            (i32.store (local.get $p) (local.get $i))
            ;; -1 → NotNow (1), -2 → Never (2)
            (i32.store offset=4 (local.get $p) (i32.sub (i32.const 0) (local.get $verdict)))
            (local.set $p (i32.add (local.get $p) (i32.const 8)))
            (local.set $nu (i32.add (local.get $nu) (i32.const 1)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))

    ;; Header: magic "DCO2", status OK, counts, no message.
    (i32.store (local.get $out) (i32.const 0x324f4344))
    (i32.store offset=4 (local.get $out) (i32.const 0))
    (i32.store offset=8 (local.get $out) (local.get $np))
    (i32.store offset=12 (local.get $out) (i32.const 0))
    (i32.store offset=16 (local.get $out) (local.get $nu))
    (i32.store offset=20 (local.get $out) (i32.const 0))
    (i64.or
      (i64.shl (i64.extend_i32_u (local.get $out)) (i64.const 32))
      (i64.extend_i32_u (i32.sub (local.get $p) (local.get $out)))))
)
