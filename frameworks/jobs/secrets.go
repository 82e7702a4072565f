package jobs

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/dcos-kernel/dcos/sdk/framework"
)

// Secret environment (docs/jobs.md, "Secrets"). A job's secretEnv is
// passed to the kernel as LaunchRequest.secret_env on every task it
// launches (an MPI job's rank hosts and launcher too): the kernel seals
// it, shows its names only, and gives the values to the agent the task
// runs on. The spec holds the values in clear, so every state entry that
// holds such a spec (specs/ keys and the runs/ records that copy it) is
// written with StatePutRequest.secret, and every output shows Redacted
// specs.

// reservedEnvPrefix: the framework sets DCOS_JOB, DCOS_JOB_RUN, ... in
// every task's env, so a secretEnv name there would be in both.
const reservedEnvPrefix = "DCOS_JOB"

// validateSecretEnv checks the spec's secretEnv with the kernel's rules
// for LaunchRequest.secret_env (framework.CheckSecretEnv) and refuses the
// DCOS_JOB names the framework sets. Errors name the entry
// ("secretEnv.DB_PASS: ...") and never quote a value.
func (j *Job) validateSecretEnv() error {
	if err := framework.CheckSecretEnv(j.SecretEnv, j.Env); err != nil {
		return err
	}
	for _, name := range slices.Sorted(maps.Keys(j.SecretEnv)) {
		if strings.HasPrefix(name, reservedEnvPrefix) {
			return fmt.Errorf("secretEnv.%s: the %s names are the framework's", name, reservedEnvPrefix)
		}
	}
	return nil
}

// HasSecrets reports whether the spec has a secretEnv: the state entries
// holding it are then written secret.
func (j *Job) HasSecrets() bool { return j != nil && len(j.SecretEnv) > 0 }

// Redacted returns a copy of j whose secretEnv values are
// framework.Redacted (the names stay). j is not changed: the copy has
// its own secretEnv map and shares the rest.
func (j *Job) Redacted() Job {
	c := *j
	c.SecretEnv = framework.RedactEnv(c.SecretEnv)
	return c
}

// Redacted returns a copy of r whose spec is Redacted.
func (r SpecRecord) Redacted() SpecRecord {
	r.Spec = r.Spec.Redacted()
	return r
}

// Redacted returns a copy of r whose spec (if any) is Redacted; r is not
// changed.
func (r *Run) Redacted() *Run {
	c := *r
	if r.Spec != nil {
		s := r.Spec.Redacted()
		c.Spec = &s
	}
	return &c
}
