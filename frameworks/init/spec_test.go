package dinit

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestParse_YAML(t *testing.T) {
	b, err := os.ReadFile("testdata/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 1 {
		t.Fatalf("got %d services, want 1", len(svcs))
	}
	s := svcs[0]
	if s.Name != "web" || s.Count() != 3 || s.Resources.Mem != 64<<20 || s.Resources.Ports != 1 {
		t.Errorf("spec = %+v", s)
	}
	if *s.UpgradeStrategy.MinimumHealthCapacity != 0.6 || *s.UpgradeStrategy.MaximumOverCapacity != 0.2 {
		t.Errorf("upgradeStrategy = %+v", s.UpgradeStrategy)
	}
	if *s.Backoff != DefaultBackoff {
		t.Errorf("backoff = %+v, want Marathon's defaults", *s.Backoff)
	}
	h := s.Health.proto()
	if h.GetHttp().GetPortName() != "http" || h.GetInterval().AsDuration() != time.Second || h.GetTimeout().AsDuration() != 500*time.Millisecond ||
		h.GetGracePeriod().AsDuration() != 5*time.Second || h.GetConsecutiveFailures() != 3 {
		t.Errorf("health check = %v", h)
	}
	l := s.launchRequest("a-1", 7, 2)
	if l.GetLabels()[LabelService] != "web" || l.GetLabels()[LabelVersion] != "7" || l.GetLabels()[LabelInstance] != "2" {
		t.Errorf("launch labels = %v", l.GetLabels())
	}
	if l.GetCommand() != "python3" || len(l.GetArgs()) != 4 || l.GetPorts()[0].GetName() != "http" || l.GetHealthCheck() == nil {
		t.Errorf("launch = %v", l)
	}
	if !s.Serial() {
		t.Error("UNIQUE service is not serial")
	}
}

func TestParse_JSONServices(t *testing.T) {
	b, err := os.ReadFile("testdata/two.json")
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(svcs) != 2 || svcs[0].Name != "a" || svcs[1].Count() != 0 {
		t.Fatalf("services = %+v", svcs)
	}
	if got := time.Duration(svcs[1].KillGracePeriod); got != 10*time.Second {
		t.Errorf("killGracePeriod = %s", got)
	}
	if got := time.Duration(svcs[0].KillGracePeriod); got != DefaultKillGracePeriod {
		t.Errorf("default killGracePeriod = %s", got)
	}
	if got := svcs[1].launchRequest("a-1", 1, 0).GetKillGracePeriod(); got.AsDuration() != 10*time.Second {
		t.Errorf("launch kill_grace_period = %v, want the spec's 10s", got)
	}
	if got := svcs[0].launchRequest("a-1", 1, 0).GetKillGracePeriod(); got.AsDuration() != DefaultKillGracePeriod {
		t.Errorf("launch kill_grace_period = %v, want the default %s", got, DefaultKillGracePeriod)
	}
	a := svcs[0].allocateRequest(1, 0, nil)
	if a.GetResources().GetMemBytes() != 1<<20 || a.GetCount() != 1 {
		t.Errorf("allocate = %v", a)
	}
}

func TestParse_Errors(t *testing.T) {
	base := "name: web\ncommand: sleep\nresources: {cpus: 0.1}\n"
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", "spec: empty file"},
		{"unknown field yaml", base + "bogus: 1\n", "services[0].bogus: unknown field"},
		{"unknown field json", `{"name":"web","command":"x","resources":{"cpus":1},"helth":{}}`, "services[0].helth: unknown field"},
		{"unknown nested", base + "health: {http: {portName: http, pth: /}}\nports: [{name: http}]\n", "services[0].health.http.pth: unknown field"},
		{"unknown in services", "services:\n- name: a\n  command: x\n  resources: {cpus: 1}\n  x: 1\n", "services[0].x: unknown field"},
		{"wrong type", "name: web\ncommand: sleep\nresources: {cpus: 0.1}\ninstances: three\n", "services[0]: instances: want int"},
		{"unknown in a list", base + "ports: [{name: a}, {name: b, hostport: 1, prot: tcp}]\n", "services[0].ports[1].prot: unknown field"},
		{"unknown top level with services", "services: []\nextra: 1\n", "extra: unknown field"},
		{"no services", "services: []\n", "services: want at least one service"},
		{"bad name", "name: Web\ncommand: x\nresources: {cpus: 1}\n", "services[0].name: must be"},
		{"duplicate", "services:\n- {name: a, command: x, resources: {cpus: 1}}\n- {name: a, command: x, resources: {cpus: 1}}\n", `services[1].name: "a" is also services[0]`},
		{"negative instances", base + "instances: -1\n", "services[0].instances: must be between 0 and 10000, got -1"},
		{"no command", "name: web\nresources: {cpus: 1}\n", "services[0].command: required"},
		{"no cpus", "name: web\ncommand: x\n", "services[0].resources.cpus: must be > 0"},
		{"bad mem", "name: web\ncommand: x\nresources: {cpus: 1, mem: lots}\n", `services[0]: resources.mem: want bytes or a quantity like "512Mi", got "lots"`},
		{"negative ports", "name: web\ncommand: x\nresources: {cpus: 1, ports: -1}\n", "services[0].resources.ports: must be between 0 and 128"},
		{"network", base + "network: overlay\n", `services[0].network: must be host or bridge, got "overlay"`},
		{"priority", base + "priority: 5000\n", "services[0].priority: must be between -1000 and 1000"},
		{"port name", base + "ports: [{name: HTTP}]\n", `services[0].ports[0].name: must be [a-z0-9_]+, got "HTTP"`},
		{"port twice", base + "ports: [{name: a}, {name: a}]\n", `services[0].ports[1].name: "a" is used twice`},
		{"port range", base + "ports: [{name: a, containerPort: 70000}]\n", "services[0].ports[0]: ports must be at most 65535"},
		{"protocol", base + "ports: [{name: a, protocol: sctp}]\n", `services[0].ports[0].protocol: must be tcp or udp, got "sctp"`},
		{"volume name", base + "volumes: [{path: data}]\n", "services[0].volumes[0].name: required"},
		{"volume path", base + "volumes: [{name: d}]\n", "services[0].volumes[0].path: required"},
		{"host volume size", base + "volumes: [{name: d, path: d, host: true, size: 10Mi}]\n", "services[0].volumes[0].size: a host volume has no size"},
		{"volume small", base + "volumes: [{name: d, path: d, size: 1Ki}]\n", "services[0].volumes[0].size: must be at least 4Mi"},
		{"reserved label", base + "labels: {dcos.svc.x: y}\n", "services[0].labels[dcos.svc.x]: the dcos.svc prefix is the init's"},
		{"bad label", base + "labels: {'a b': y}\n", "services[0].labels[a b]: key must be"},
		{"constraint op", base + "constraints: [{label: zone, op: NEAR}]\n", `services[0].constraints[0].op: must be one of`},
		{"constraint label", base + "constraints: [{op: UNIQUE}]\n", "services[0].constraints[0].label: required"},
		{"constraint value", base + "constraints: [{label: zone, op: EQUALS}]\n", "services[0].constraints[0].value: required with EQUALS"},
		{"constraint values", base + "constraints: [{label: zone, op: IN}]\n", "services[0].constraints[0].values: required with IN"},
		{"constraint max", base + "constraints: [{label: zone, op: MAX_PER}]\n", "services[0].constraints[0].max: must be >= 1, got 0"},
		{"check none", base + "health: {interval: 1s}\n", "services[0].health: want exactly one of http, tcp or command, got 0"},
		{"check two", base + "health: {tcp: {port: 80}, command: {command: 'true'}}\n", "services[0].health: want exactly one of http, tcp or command, got 2"},
		{"check interval zero", base + "health: {tcp: {port: 80}, interval: 0s}\n", "services[0].health.interval: must be > 0"},
		{"check interval small", base + "health: {tcp: {port: 80}, interval: 1ms}\n", "services[0].health.interval: must be between 10ms and 1h, got 1ms"},
		{"check timeout", base + "health: {tcp: {port: 80}, timeout: 0s}\n", "services[0].health.timeout: must be > 0"},
		{"check timeout > interval", base + "health: {tcp: {port: 80}, interval: 1s, timeout: 2s}\n", "services[0].health.timeout: must be at most interval (1s), got 2s"},
		{"check grace", base + "health: {tcp: {port: 80}, gracePeriod: 2h}\n", "services[0].health.gracePeriod: must be between 0s and 1h, got 2h0m0s"},
		{"check failures", base + "health: {tcp: {port: 80}, consecutiveFailures: 101}\n", "services[0].health.consecutiveFailures: must be between 1 and 100"},
		{"check bad duration", base + "health: {tcp: {port: 80}, interval: soon}\n", `services[0]: health.interval: want a duration like "10s" or seconds, got "soon"`},
		{"http path", base + "ports: [{name: http}]\nhealth: {http: {portName: http, path: health}}\n", `services[0].health.http.path: must start with /, got "health"`},
		{"http no port", base + "health: {http: {path: /}}\n", "services[0].health.http: want portName or port"},
		{"http both ports", base + "ports: [{name: http}]\nhealth: {http: {portName: http, port: 80}}\n", "services[0].health.http: want portName or port, not both"},
		{"http unknown port", base + "readiness: {http: {portName: web}}\n", `services[0].readiness.http.portName: "web" is not one of ports`},
		{"http status", base + "health: {http: {port: 80, statusMin: 500, statusMax: 200}}\n", "services[0].health.http.statusMin: must be <= statusMax"},
		{"tcp port", base + "health: {tcp: {port: 70000}}\n", "services[0].health.tcp.port: must be at most 65535"},
		{"command empty", base + "health: {command: {args: [x]}}\n", "services[0].health.command.command: required"},
		{"backoff seconds", base + "backoff: {seconds: 0, factor: 1.15, maxLaunchDelaySeconds: 60}\n", "services[0].backoff.seconds: must be > 0"},
		{"backoff factor", base + "backoff: {seconds: 1, factor: 0.5, maxLaunchDelaySeconds: 60}\n", "services[0].backoff.factor: must be between 1 and 10"},
		{"backoff max", base + "backoff: {seconds: 10, factor: 2, maxLaunchDelaySeconds: 5}\n", "services[0].backoff.maxLaunchDelaySeconds: must be between backoff.seconds and 86400"},
		{"kill grace", base + "killGracePeriod: 11m\n", "services[0].killGracePeriod: must be between 0s and 10m, got 11m0s"},
		{"min health", base + "upgradeStrategy: {minimumHealthCapacity: 1.5}\n", "services[0].upgradeStrategy.minimumHealthCapacity: must be between 0 and 1, got 1.5"},
		{"max over", base + "upgradeStrategy: {maximumOverCapacity: -1}\n", "services[0].upgradeStrategy.maximumOverCapacity: must be between 0 and 1, got -1"},
		{"no room", base + "instances: 3\nupgradeStrategy: {minimumHealthCapacity: 1, maximumOverCapacity: 0}\n", "services[0].upgradeStrategy: minimumHealthCapacity 1 and maximumOverCapacity 0 leave no room"},
		{"second service", "services:\n- {name: a, command: x, resources: {cpus: 1}}\n- {name: b, command: x, resources: {cpus: 1}, health: {tcp: {port: 1}, interval: 0s}}\n", "services[1].health.interval: must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			if err == nil {
				t.Fatalf("Parse succeeded, want error %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %q, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestService_Template(t *testing.T) {
	svcs, err := Parse([]byte("name: web\ncommand: sleep\nresources: {cpus: 0.1}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := svcs[0]
	b := a
	five := 5
	b.Instances = &five
	if a.Template() != b.Template() {
		t.Error("a change of instances changed the template")
	}
	c := a
	c.Args = []string{"10"}
	if a.Template() == c.Template() {
		t.Error("a change of args kept the template")
	}
	r1 := Next(nil, a, "apply", false, time.Unix(0, 0))
	r2 := Next(r1, b, "scale", false, time.Unix(1, 0))
	r3 := Next(r2, c, "apply", false, time.Unix(2, 0))
	r4 := Next(r3, c, "restart", true, time.Unix(3, 0))
	got := []int64{r1.Version, r1.TemplateVersion, r2.Version, r2.TemplateVersion, r3.Version, r3.TemplateVersion, r4.Version, r4.TemplateVersion}
	want := []int64{1, 1, 2, 1, 3, 3, 4, 4}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("versions = %v, want %v", got, want)
		}
	}
	_ = pb.Constraint_OP_IN
}

// FuzzParse: any input either fails with an error or gives services that
// validate and survive a round trip through their JSON.
func FuzzParse(f *testing.F) {
	for _, p := range []string{"testdata/web.yaml", "testdata/two.json"} {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("name: a\ncommand: x\nresources: {cpus: 1, mem: 1.5Gi}\nhealth: {tcp: {port: 1}, interval: 2}\n"))
	f.Add([]byte("name: a\ncommand: x\nresources: {cpus: 1}\nenv: {A: b}\nsecretEnv: {DB_PASS: hunter2}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		svcs, err := Parse(b)
		if err != nil {
			return
		}
		for i := range svcs {
			if err := svcs[i].Validate(); err != nil {
				t.Fatalf("Parse returned a service that does not validate: %v", err)
			}
			j, err := json.Marshal(svcs[i])
			if err != nil {
				t.Fatal(err)
			}
			again, err := Parse(j)
			if err != nil {
				t.Fatalf("the JSON of a parsed service does not parse: %v\n%s", err, j)
			}
			if again[0].Template() != svcs[i].Template() {
				t.Fatalf("round trip changed the service:\n%s\n%s", svcs[i].Template(), again[0].Template())
			}
		}
	})
}
