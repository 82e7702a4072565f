package jobs

import (
	"strings"
	"testing"
	"time"
)

func TestParseSpec_Defaults(t *testing.T) {
	j, err := ParseSpec([]byte("name: nightly\ncommand: /bin/true\nresources: {cpus: 0.5, mem: 64Mi}\nschedule: '@daily'\n"))
	if err != nil {
		t.Fatal(err)
	}
	if j.Parallelism != 1 || j.Completions != 1 || *j.BackoffLimit != 6 || time.Duration(j.Backoff.Initial) != 10*time.Second ||
		time.Duration(j.Backoff.Max) != 5*time.Minute || j.ConcurrencyPolicy != ConcurrencyAllow || j.TimeZone != "UTC" ||
		*j.SuccessfulRunsHistoryLimit != 3 || *j.FailedRunsHistoryLimit != 1 || j.Resources.Mem != 64<<20 {
		t.Fatalf("defaults: %+v", j)
	}
	g, err := ParseSpec([]byte(`{"name":"g","command":"x","resources":{"cpus":1},"parallelism":8,"gang":true}`))
	if err != nil {
		t.Fatal(err)
	}
	if g.GangMin != 8 || g.Completions != 8 || g.Resources.Mem != DefaultMem {
		t.Fatalf("gang defaults: %+v", g)
	}
}

func TestParseSpec_Errors(t *testing.T) {
	base := "name: j\ncommand: x\nresources: {cpus: 1}\n"
	tests := []struct{ name, yaml, want string }{
		{"empty", "", "spec: empty file"},
		{"parallelism", base + "parallelism: -1\n", "spec.parallelism: must be 1 to 1000, got -1"},
		{"parallelism 0", base + "parallelism: 0\n", "spec.parallelism: must be 1 to 1000, got 0"},
		{"unknown", base + "paralelism: 2\n", "spec.paralelism: unknown field"},
		{"unknown nested", base + "backoff: {inital: 1s}\n", "spec.backoff.inital: unknown field"},
		{"name", "name: Bad_Name\ncommand: x\nresources: {cpus: 1}\n", `spec.name: want lowercase letters, digits and '-', 1 to 63, got "Bad_Name"`},
		{"command", "name: j\nresources: {cpus: 1}\n", "spec.command: required (or driver with driverConfig)"},
		{"cpus", "name: j\ncommand: x\nresources: {cpus: 0}\n", "spec.resources.cpus: must be > 0, got 0"},
		{"schedule", base + "schedule: '61 * * * *'\n", `spec.schedule: minute: want 0 to 59, got "61"`},
		{"zone", base + "schedule: '@daily'\ntimeZone: Mars/Olympus\n", `spec.timeZone: unknown IANA zone "Mars/Olympus"`},
		{"policy", base + "concurrencyPolicy: Sometimes\n", `spec.concurrencyPolicy: want Allow, Forbid or Replace, got "Sometimes"`},
		{"gangMin", base + "parallelism: 4\ngang: true\ngangMin: 5\n", "spec.gangMin: must be 1 to parallelism (4), got 5"},
		{"backoffLimit", base + "backoffLimit: -1\n", "spec.backoffLimit: must be 0 to 1000, got -1"},
		{"backoff", base + "backoff: {initial: 1m, max: 1s}\n", "spec.backoff.max: must be >= backoff.initial (1m0s), got 1s"},
		{"duration type", base + "activeDeadline: soon\n", `spec.activeDeadline: want a duration like "10s" or seconds, got "soon"`},
		{"constraint", base + "constraints: [{label: zone, op: LIKE}]\n", `spec.constraints[0].op: want EQUALS, NOT_EQUALS or IN, got "LIKE"`},
		{"not object", "[1, 2]", "spec: want an object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseSpec([]byte(tt.yaml))
			if err == nil || err.Error() != tt.want {
				t.Fatalf("ParseSpec: %v, want %q", err, tt.want)
			}
		})
	}
}

func TestJob_BackoffDelay(t *testing.T) {
	j, _ := ParseSpec([]byte("name: j\ncommand: x\nresources: {cpus: 1}\n"))
	var got []string
	for n := 1; n <= 7; n++ {
		got = append(got, j.BackoffDelay(n).String())
	}
	if s := strings.Join(got, " "); s != "10s 20s 40s 1m20s 2m40s 5m0s 5m0s" {
		t.Fatalf("delays %s", s)
	}
}

// FuzzParseSpec: the decoder never panics, and what it accepts is valid
// and survives a JSON round trip.
func FuzzParseSpec(f *testing.F) {
	f.Add([]byte("name: j\ncommand: x\nresources: {cpus: 1}\nschedule: '*/5 1-3 * jan,feb mon-fri'\ntimeZone: Europe/Paris\n"))
	f.Add([]byte(`{"name":"g","command":"x","resources":{"cpus":1,"mem":"1Gi"},"parallelism":8,"gang":true,"backoff":{"initial":"1s"}}`))
	f.Add([]byte("name: j\ncommand: x\nresources: {cpus: 1}\nactiveDeadline: 1e300\n"))
	f.Add([]byte("name: j\ncommand: x\nresources: {cpus: 1}\nenv: {A: b}\nsecretEnv: {DB_PASS: hunter2}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		j, err := ParseSpec(data)
		if err != nil {
			return
		}
		if err := j.Validate(); err != nil {
			t.Fatalf("accepted an invalid spec: %v", err)
		}
		if j.Schedule != "" {
			c, err := ParseCron(j.Schedule)
			if err != nil {
				t.Fatal(err)
			}
			c.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), j.Location())
		}
	})
}
