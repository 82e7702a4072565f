package dinit

import (
	"errors"
	"fmt"
	"maps"
	"sort"
	"strings"
)

// Secret environment (docs/init.md, "Secrets"). A service's secretEnv is
// passed to the kernel as LaunchRequest.secret_env: the kernel seals it,
// shows its names only, and gives the values to the agent the task runs
// on. The spec itself holds the values in clear, so every state entry
// that holds such a spec (specs/ and history/ keys) is written with
// StatePutRequest.secret, and every output shows Redacted specs.

// Limits of secretEnv: the kernel's limits of LaunchRequest.secret_env
// (a spec over them could never launch).
const (
	MaxSecretEnv      = 64
	MaxSecretEnvBytes = 64 << 10
)

// SecretValue is what outputs (dcosctl svc, logs) show in place of a
// secretEnv value.
const SecretValue = "<redacted>"

// validateSecretEnv checks secretEnv against env with the kernel's rules
// for LaunchRequest.secret_env: env's name rules, no name in both, no NUL
// in a value, at most MaxSecretEnv entries and MaxSecretEnvBytes of names
// and values. Errors name the entry ("secretEnv.DB_PASS: ...") and never
// quote a value.
func validateSecretEnv(secretEnv, env map[string]string) error {
	if len(secretEnv) > MaxSecretEnv {
		return fmt.Errorf("secretEnv: at most %d entries, got %d", MaxSecretEnv, len(secretEnv))
	}
	names := make([]string, 0, len(secretEnv))
	for name := range secretEnv {
		names = append(names, name)
	}
	sort.Strings(names)
	size := 0
	for _, name := range names {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return fmt.Errorf("secretEnv: invalid variable name %q (want no '=' or NUL, not empty)", name)
		}
		if _, dup := env[name]; dup {
			return fmt.Errorf("secretEnv.%s: also in env (a name is in one of them)", name)
		}
		v := secretEnv[name]
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

// validateEnv checks env with the kernel's rules for LaunchRequest.env.
func validateEnv(env map[string]string) error {
	for name, v := range env {
		if name == "" || strings.ContainsAny(name, "=\x00") {
			return fmt.Errorf("env: invalid variable name %q (want no '=' or NUL, not empty)", name)
		}
		if strings.ContainsRune(v, 0) {
			return errors.New("env." + name + ": the value contains a NUL byte")
		}
	}
	return nil
}

// HasSecrets reports whether the spec has a secretEnv: the state entries
// holding it are then written secret.
func (s *Service) HasSecrets() bool { return len(s.SecretEnv) > 0 }

// Redacted returns a copy of s whose secretEnv values are SecretValue
// (the names stay). s is not changed: the copy has its own secretEnv
// map and shares the rest.
func (s *Service) Redacted() Service {
	c := *s
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
func (r Record) Redacted() Record {
	r.Spec = r.Spec.Redacted()
	return r
}
