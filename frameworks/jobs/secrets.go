package jobs

import (
	"fmt"
	"maps"
	"sort"
	"strings"
)

// Secret environment (docs/jobs.md, "Secrets"). A job's secretEnv is
// passed to the kernel as LaunchRequest.secret_env on every task it
// launches (an MPI job's rank hosts and launcher too): the kernel seals
// it, shows its names only, and gives the values to the agent the task
// runs on. The spec holds the values in clear, so every state entry that
// holds such a spec (specs/ keys and the runs/ records that copy it) is
// written with StatePutRequest.secret, and every output shows Redacted
// specs.

// Limits of secretEnv: the kernel's limits of LaunchRequest.secret_env
// (a spec over them could never launch).
const (
	MaxSecretEnv      = 64
	MaxSecretEnvBytes = 64 << 10
)

// SecretValue is what outputs (dcosctl job, logs) show in place of a
// secretEnv value.
const SecretValue = "<redacted>"

// reservedEnvPrefix: the framework sets DCOS_JOB, DCOS_JOB_RUN, ... in
// every task's env, so a secretEnv name there would be in both.
const reservedEnvPrefix = "DCOS_JOB"

// validateSecretEnv checks the spec's secretEnv with the kernel's rules
// for LaunchRequest.secret_env (env's name rules, no name in env, no NUL
// in a value, at most MaxSecretEnv entries and MaxSecretEnvBytes of
// names and values) and refuses the DCOS_JOB names the framework sets.
// Errors name the entry ("secretEnv.DB_PASS: ...") and never quote a
// value.
func (j *Job) validateSecretEnv() error {
	if len(j.SecretEnv) > MaxSecretEnv {
		return fmt.Errorf("secretEnv: at most %d entries, got %d", MaxSecretEnv, len(j.SecretEnv))
	}
	names := make([]string, 0, len(j.SecretEnv))
	for name := range j.SecretEnv {
		names = append(names, name)
	}
	sort.Strings(names)
	size := 0
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return fmt.Errorf("secretEnv: invalid variable name %q (want no '=' or NUL, not empty)", name)
		}
		if _, dup := j.Env[name]; dup {
			return fmt.Errorf("secretEnv.%s: also in env (a name is in one of them)", name)
		}
		if strings.HasPrefix(name, reservedEnvPrefix) {
			return fmt.Errorf("secretEnv.%s: the %s names are the framework's", name, reservedEnvPrefix)
		}
		v := j.SecretEnv[name]
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("secretEnv.%s: the value contains a NUL byte", name)
		}
		size += len(name) + len(v)
	}
	if size > MaxSecretEnvBytes {
		return fmt.Errorf("secretEnv: names and values total %d bytes, more than %d", size, MaxSecretEnvBytes)
	}
	return nil
}

// HasSecrets reports whether the spec has a secretEnv: the state entries
// holding it are then written secret.
func (j *Job) HasSecrets() bool { return j != nil && len(j.SecretEnv) > 0 }

// Redacted returns a copy of j whose secretEnv values are SecretValue
// (the names stay). j is not changed: the copy has its own secretEnv
// map and shares the rest.
func (j *Job) Redacted() Job {
	c := *j
	if len(c.SecretEnv) == 0 {
		return c
	}
	c.SecretEnv = maps.Clone(c.SecretEnv)
	for name := range c.SecretEnv {
		c.SecretEnv[name] = SecretValue
	}
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
