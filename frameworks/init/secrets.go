package dinit

import "github.com/dcos-kernel/dcos/sdk/framework"

// Secret environment (docs/init.md, "Secrets"). A service's secretEnv is
// passed to the kernel as LaunchRequest.secret_env: the kernel seals it,
// shows its names only, and gives the values to the agent the task runs
// on. The spec itself holds the values in clear, so every state entry
// that holds such a spec (specs/ and history/ keys) is written with
// StatePutRequest.secret, and every output shows Redacted specs.

// HasSecrets reports whether the spec has a secretEnv: the state entries
// holding it are then written secret.
func (s *Service) HasSecrets() bool { return len(s.SecretEnv) > 0 }

// Redacted returns a copy of s whose secretEnv values are
// framework.Redacted (the names stay). s is not changed: the copy has
// its own secretEnv map and shares the rest.
func (s *Service) Redacted() Service {
	c := *s
	c.SecretEnv = framework.RedactEnv(c.SecretEnv)
	return c
}

// Redacted returns a copy of r whose spec is Redacted.
func (r Record) Redacted() Record {
	r.Spec = r.Spec.Redacted()
	return r
}
