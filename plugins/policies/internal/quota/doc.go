// Package quota keeps a built-in policy's answer within the roles'
// quotas: it tracks what each capped role holds through one decision, so
// that a policy can leave out a request whose placement would take its
// role past its quota, as the kernel would refuse it (kernel.Judge,
// docs/roles.md).
//
// It is not where quotas are enforced (the kernel does that whatever the
// policy answers) nor where they are configured (RoleSet, dcosd flags).
package quota
