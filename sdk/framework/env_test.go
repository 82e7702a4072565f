package framework

import (
	"strings"
	"testing"
)

// TestCheckSecretEnv: the kernel's rules for secret_env, errors naming
// the entry and never quoting a value.
func TestCheckSecretEnv(t *testing.T) {
	many := map[string]string{}
	for i := range MaxSecretEnv + 1 {
		many[strings.Repeat("N", i+1)] = "v"
	}
	for _, c := range []struct {
		name      string
		secret    map[string]string
		env       map[string]string
		wantError string
	}{
		{"none", nil, nil, ""},
		{"fine", map[string]string{"DB_PASS": "hunter2"}, map[string]string{"USER": "app"}, ""},
		{"in both", map[string]string{"USER": "hunter2"}, map[string]string{"USER": "app"}, "secretEnv.USER: also in env"},
		{"bad name", map[string]string{"A=B": "hunter2"}, nil, `secretEnv: invalid variable name "A=B"`},
		{"empty name", map[string]string{"": "hunter2"}, nil, `secretEnv: invalid variable name ""`},
		{"NUL in value", map[string]string{"DB_PASS": "hun\x00ter2"}, nil, "secretEnv.DB_PASS: the value contains a NUL byte"},
		{"too many", many, nil, "secretEnv: at most 64 entries, got 65"},
		{"too big", map[string]string{"BIG": strings.Repeat("v", MaxSecretEnvBytes)}, nil, "more than 65536"},
	} {
		err := CheckSecretEnv(c.secret, c.env)
		switch {
		case c.wantError == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.wantError != "" && (err == nil || !strings.Contains(err.Error(), c.wantError)):
			t.Errorf("%s: %v, want %q", c.name, err, c.wantError)
		case err != nil && strings.Contains(err.Error(), "hunter2"):
			t.Errorf("%s: the error quotes the value: %v", c.name, err)
		}
	}
	if err := CheckEnv(map[string]string{"A": "b"}); err != nil {
		t.Error(err)
	}
	if err := CheckEnv(map[string]string{"A": "b\x00"}); err == nil || !strings.Contains(err.Error(), "env.A:") {
		t.Errorf("NUL in an env value: %v", err)
	}
}

// TestRedactEnv: names kept, values replaced, the input untouched.
func TestRedactEnv(t *testing.T) {
	in := map[string]string{"DB_PASS": "hunter2", "KEY": "k"}
	out := RedactEnv(in)
	if len(out) != 2 || out["DB_PASS"] != Redacted || out["KEY"] != Redacted {
		t.Errorf("RedactEnv = %v", out)
	}
	if in["DB_PASS"] != "hunter2" {
		t.Errorf("the input was changed: %v", in)
	}
	if RedactEnv(nil) != nil {
		t.Error("RedactEnv(nil) is not nil")
	}
}
