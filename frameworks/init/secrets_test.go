package dinit

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestParse_SecretEnv(t *testing.T) {
	svcs, err := Parse([]byte("name: db\ncommand: x\nresources: {cpus: 1}\nenv: {USER: app}\nsecretEnv: {DB_PASS: hunter2, API_KEY: k}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := svcs[0]
	if !s.HasSecrets() || s.SecretEnv["DB_PASS"] != "hunter2" {
		t.Fatalf("secretEnv = %v", s.SecretEnv)
	}
	l := s.launchRequest("a-1", 1, 0)
	if l.GetSecretEnv()["DB_PASS"] != "hunter2" || l.GetSecretEnv()["API_KEY"] != "k" {
		t.Errorf("launch secret_env = %v", l.GetSecretEnv())
	}
	if _, inEnv := l.GetEnv()["DB_PASS"]; inEnv || l.GetEnv()["USER"] != "app" {
		t.Errorf("launch env = %v, want the secret out of it", l.GetEnv())
	}
	plain, err := Parse([]byte("name: db\ncommand: x\nresources: {cpus: 1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if plain[0].HasSecrets() {
		t.Error("a spec without secretEnv has secrets")
	}
}

func TestParse_SecretEnvErrors(t *testing.T) {
	base := "name: db\ncommand: x\nresources: {cpus: 1}\n"
	many := make([]string, MaxSecretEnv+1)
	for i := range many {
		many[i] = "S" + strings.Repeat("x", i) + ": v"
	}
	big := strings.Repeat("v", MaxSecretEnvBytes)
	tests := []struct{ name, in, want string }{
		{"in both", base + "env: {DB_PASS: a}\nsecretEnv: {DB_PASS: hunter2}\n", "services[0].secretEnv.DB_PASS: also in env"},
		{"bad name", base + "secretEnv: {'A=B': hunter2}\n", `services[0].secretEnv: invalid variable name "A=B"`},
		{"empty name", `{"name":"db","command":"x","resources":{"cpus":1},"secretEnv":{"":"hunter2"}}`, `services[0].secretEnv: invalid variable name ""`},
		{"NUL", `{"name":"db","command":"x","resources":{"cpus":1},"secretEnv":{"DB_PASS":"hun\u0000ter2"}}`, "services[0].secretEnv.DB_PASS: the value contains a NUL byte"},
		{"too many", base + "secretEnv: {" + strings.Join(many, ", ") + "}\n", "services[0].secretEnv: at most 64 entries, got 65"},
		{"too big", base + "secretEnv: {BIG: " + big + "}\n", "services[0].secretEnv: names and values total 65539 bytes, more than 65536"},
		{"not a string", base + "secretEnv: {DB_PASS: [1]}\n", "secretEnv"},
		{"bad env name", base + "env: {'A=B': x}\n", `services[0].env: invalid variable name "A=B"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse: %v, want %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "hun\x00ter2") {
				t.Errorf("the error quotes the secret: %q", err)
			}
		})
	}
}

func TestService_RedactedAndTemplate(t *testing.T) {
	svcs, err := Parse([]byte("name: db\ncommand: x\nresources: {cpus: 1}\nsecretEnv: {DB_PASS: hunter2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := svcs[0]
	rec := Record{Spec: s, Version: 3}
	b, err := json.Marshal(rec.Redacted())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "hunter2") || !strings.Contains(string(b), `"secretEnv":{"DB_PASS":"\u003csecret\u003e"}`) {
		t.Errorf("redacted record = %s", b)
	}
	if s.SecretEnv["DB_PASS"] != "hunter2" {
		t.Error("Redacted changed the spec it copied")
	}
	// A new secret value is a new template (a rolling restart).
	c := s
	c.SecretEnv = map[string]string{"DB_PASS": "changed"}
	r1 := Next(nil, s, "apply", false, time.Unix(0, 0))
	r2 := Next(r1, c, "apply", false, time.Unix(1, 0))
	if r2.TemplateVersion != 2 {
		t.Errorf("a secretEnv change kept template version %d", r2.TemplateVersion)
	}
}
