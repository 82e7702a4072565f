;; spin.wat: a benchmark module, not a policy: spin(n) counts down a tight
;; loop of n iterations, to measure what WithCloseOnContextDone costs.
(module
  (func (export "spin") (param $n i64) (result i64)
    (loop $l
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br_if $l (i64.gt_s (local.get $n) (i64.const 0))))
    (local.get $n))
)
