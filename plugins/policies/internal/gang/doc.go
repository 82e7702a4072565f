// Package gang makes a built-in policy honour gangs (policy.Request.GangMin,
// docs/policy-abi.md): a gang's requests are placed at least GangMin
// together in one decision, or none of them, and a gang that does not fit
// holds no room that later requests could use.
//
// It wraps a policy rather than changing each one's inner loop: the policy
// decides as if every gang were ordinary requests; the first gang (in batch
// order) it placed only partly is taken out of the batch, and the policy
// decides again on the rest, until no gang is partial. For a policy that
// places requests in batch order (binpack, spread, priority, first fit)
// that is exactly "place the gang tentatively; if fewer than GangMin fit,
// undo them and go on with the later requests". The kernel checks the
// answer anyway (kernel.Judge drops a partial gang whatever a policy says).
package gang
