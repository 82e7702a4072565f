package framework

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// The kernel's limits of LaunchRequest.secret_env (kernel/secrets.go): a
// launch over them is refused.
const (
	MaxSecretEnv      = 64       // entries per task
	MaxSecretEnvBytes = 64 << 10 // bytes of names and values in all
)

// CheckEnv checks env with the kernel's rules for LaunchRequest.env: a
// name is not empty and holds no '=' or NUL, a value holds no NUL.
// Errors name the entry ("env.NAME: ..."), so that a framework can refuse
// a spec before it launches anything.
func CheckEnv(env map[string]string) error {
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

// CheckSecretEnv checks secretEnv, launched beside env, with the
// kernel's rules for LaunchRequest.secret_env: env's name rules, no name
// in both, no NUL in a value, at most MaxSecretEnv entries and
// MaxSecretEnvBytes of names and values. Errors name the entry
// ("secretEnv.NAME: ...", in name order) and never quote a value.
func CheckSecretEnv(secretEnv, env map[string]string) error {
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

// Redacted is what an output shows in place of a secret value (a task's
// secret_env, a spec's secretEnv): the name stays, the value does not.
const Redacted = "<redacted>"

// RedactEnv returns env with every value replaced by Redacted, as a new
// map (env is not changed); an empty env is returned as it is.
func RedactEnv(env map[string]string) map[string]string {
	if len(env) == 0 {
		return env
	}
	out := make(map[string]string, len(env))
	for name := range env {
		out[name] = Redacted
	}
	return out
}
