package ctl

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func durationOf(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func TestRun_Alloc(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).replyWith("Allocate", &syscallsv1.AllocateResponse{
		Allocations: []*syscallsv1.Allocation{
			{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED},
			{Id: "a-2", State: syscallsv1.AllocationState_ALLOCATION_STATE_PENDING},
		},
		PendingReason: "insufficient memory on 3 agents",
	}, nil)
	url := k.serve(t)
	res := func(cpus float64, mem, disk int64) *syscallsv1.Resources {
		return &syscallsv1.Resources{Cpus: cpus, MemBytes: mem, DiskBytes: disk}
	}
	tests := []struct {
		name string
		args []string
		want *syscallsv1.AllocateRequest
	}{
		{"sizes", []string{"--cpus", "0.5", "--mem", "64Mi", "--disk", "1G"},
			&syscallsv1.AllocateRequest{Resources: res(0.5, 64<<20, 1e9), Count: 1}},
		{"count role priority", []string{"--cpus", "2", "--mem", "1Gi", "--count", "3", "--role", "batch", "--priority", "7"},
			&syscallsv1.AllocateRequest{Resources: res(2, 1<<30, 0), Count: 3, Role: "batch", Priority: 7}},
		{"constraints", []string{"--cpus", "1", "--mem", "1Mi", "--constraint", "zone=b", "-c", "gpu!=none", "--constraint", "rack~=r1,r2"},
			&syscallsv1.AllocateRequest{Resources: res(1, 1<<20, 0), Count: 1, Constraints: []*syscallsv1.Constraint{
				{Label: "zone", Op: syscallsv1.Constraint_OP_EQUALS, Values: []string{"b"}},
				{Label: "gpu", Op: syscallsv1.Constraint_OP_NOT_EQUALS, Values: []string{"none"}},
				{Label: "rack", Op: syscallsv1.Constraint_OP_IN, Values: []string{"r1", "r2"}},
			}}},
		{"lease", []string{"--cpus", "1", "--mem", "1Mi", "--lease", "1m30s"},
			&syscallsv1.AllocateRequest{Resources: res(1, 1<<20, 0), Count: 1, LeaseTtl: durationOf(90 * time.Second)}},
		{"host ports", []string{"--cpus", "1", "--mem", "1Mi", "--ports", "3"},
			&syscallsv1.AllocateRequest{Resources: &syscallsv1.Resources{Cpus: 1, MemBytes: 1 << 20, Ports: 3}, Count: 1}},
		{"gang", []string{"--cpus", "1", "--mem", "1Mi", "--count", "8", "--gang"},
			&syscallsv1.AllocateRequest{Resources: res(1, 1<<20, 0), Count: 8, Gang: &syscallsv1.Gang{}}},
		{"gang min", []string{"--cpus", "1", "--mem", "1Mi", "--count", "8", "--gang-min", "6"},
			&syscallsv1.AllocateRequest{Resources: res(1, 1<<20, 0), Count: 8, Gang: &syscallsv1.Gang{MinCount: 6}}},
		{"volumes", []string{"--cpus", "1", "--mem", "1Mi", "--volume", "data=1Gi", "-v", "old"},
			&syscallsv1.AllocateRequest{Resources: res(1, 1<<20, 0), Count: 1, Volumes: []*syscallsv1.VolumeClaim{{Name: "data", SizeBytes: 1 << 30}, {Name: "old"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "alloc"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last("Allocate"), tt.want)
			for _, s := range []string{"a-1", "GRANTED", "ag-1", "a-2", "PENDING", "pending: insufficient memory on 3 agents"} {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("output lacks %q:\n%s", s, r.stdout)
				}
			}
		})
	}
}

func TestRun_AllocUsage(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no cpus", []string{"--mem", "1Gi"}, "--cpus is required"},
		{"no mem", []string{"--cpus", "1"}, "--mem is required"},
		{"bad cpus", []string{"--cpus", "lots", "--mem", "1Gi"}, `--cpus: "lots" is not a number`},
		{"bad mem", []string{"--cpus", "1", "--mem", "1Zi"}, `--mem: invalid quantity`},
		{"bad disk", []string{"--cpus", "1", "--mem", "1Gi", "--disk", "-1"}, `--disk: invalid quantity`},
		{"bad count", []string{"--cpus", "1", "--mem", "1Gi", "--count", "0"}, "--count: want a number from 1"},
		{"bad lease", []string{"--cpus", "1", "--mem", "1Gi", "--lease", "soon"}, "invalid value"},
		{"gang min above count", []string{"--cpus", "1", "--mem", "1Gi", "--count", "3", "--gang-min", "4"}, "--gang-min: want a number from 1 to --count (3), got 4"},
		{"gang min 0", []string{"--cpus", "1", "--mem", "1Gi", "--gang-min", "0"}, "--gang-min: want a number from 1"},
		{"negative lease", []string{"--cpus", "1", "--mem", "1Gi", "--lease", "-1s"}, "--lease: want a positive duration"},
		{"bad constraint", []string{"--cpus", "1", "--mem", "1Gi", "--constraint", "zone"}, `--constraint "zone": want K=V`},
		{"empty in value", []string{"--cpus", "1", "--mem", "1Gi", "--constraint", "zone~=a,"}, "empty value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "alloc"}, tt.args...)...)
			if r.code != exitUsageError || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, exitUsageError, tt.want)
			}
		})
	}
	if m := k.methods(); len(m) != 0 {
		t.Errorf("calls sent on usage errors: %v", m)
	}
}

func TestParseConstraint(t *testing.T) {
	tests := []struct {
		in      string
		want    *syscallsv1.Constraint
		wantErr bool
	}{
		{in: "zone=b", want: &syscallsv1.Constraint{Label: "zone", Op: syscallsv1.Constraint_OP_EQUALS, Values: []string{"b"}}},
		{in: "zone!=b", want: &syscallsv1.Constraint{Label: "zone", Op: syscallsv1.Constraint_OP_NOT_EQUALS, Values: []string{"b"}}},
		{in: "zone~=a,b,c", want: &syscallsv1.Constraint{Label: "zone", Op: syscallsv1.Constraint_OP_IN, Values: []string{"a", "b", "c"}}},
		{in: "k=a=b", want: &syscallsv1.Constraint{Label: "k", Op: syscallsv1.Constraint_OP_EQUALS, Values: []string{"a=b"}}},
		{in: "k=a,b", want: &syscallsv1.Constraint{Label: "k", Op: syscallsv1.Constraint_OP_EQUALS, Values: []string{"a,b"}}},
		{in: "zone", wantErr: true},
		{in: "=b", wantErr: true},
		{in: "!=b", wantErr: true},
		{in: "zone=", wantErr: true},
		{in: "zone~=", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseConstraint(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseConstraint(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if !tt.wantErr {
				assertProto(t, got, tt.want)
			}
		})
	}
}

func FuzzParseConstraint(f *testing.F) {
	for _, s := range []string{"zone=b", "zone!=b", "rack~=a,b", "", "=", "!=", "~=,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseConstraint(s)
		if err != nil {
			return
		}
		if c.GetLabel() == "" || len(c.GetValues()) == 0 {
			t.Fatalf("parseConstraint(%q) = %v: empty label or values", s, c)
		}
		for _, v := range c.GetValues() {
			if v == "" {
				t.Fatalf("parseConstraint(%q) = %v: empty value", s, c)
			}
		}
	})
}

func TestRun_Launch(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-7"}}, nil)
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want *syscallsv1.LaunchRequest
	}{
		{"command after --", []string{"a-1", "--", "ls", "-la", "--env", "X=1"},
			&syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "ls", Args: []string{"-la", "--env", "X=1"}}},
		{"env and workdir", []string{"a-1", "--env", "A=1", "-e", "B=x=y", "-e", "C=1,2", "--workdir", "/srv", "--", "server"},
			&syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "server", Env: map[string]string{"A": "1", "B": "x=y", "C": "1,2"}, WorkingDir: "/srv"}},
		{"host network", []string{"a-1", "--network", "host", "--", "server"},
			&syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "server", Network: "host"}},
		{"bridge with ports", []string{"a-1", "--network", "bridge", "--port", "http:8080", "--port", "dns:53:5353/udp", "--port", "admin_2:9000:0/tcp", "--", "server"},
			&syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "server", Network: "bridge", Ports: []*syscallsv1.PortRequest{
				{Name: "http", ContainerPort: 8080},
				{Name: "dns", ContainerPort: 53, HostPort: 5353, Protocol: "udp"},
				{Name: "admin_2", ContainerPort: 9000, Protocol: "tcp"},
			}}},
		{"a port implies bridge", []string{"a-1", "--port", "http:8080:80", "--", "server"},
			&syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "server", Network: "bridge", Ports: []*syscallsv1.PortRequest{{Name: "http", ContainerPort: 8080, HostPort: 80}}}},
		{"host network ports", []string{"a-1", "--network", "host", "--port", "http", "--port", "admin:9000/udp", "--", "server"},
			&syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "server", Network: "host", Ports: []*syscallsv1.PortRequest{
				{Name: "http"}, {Name: "admin", ContainerPort: 9000, Protocol: "udp"}}}},
		{"volumes", []string{"a-1", "--volume", "data:srv/data", "--host-volume", "certs:certs:ro", "--", "server"},
			&syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "server", Volumes: []*syscallsv1.VolumeMount{
				{Name: "data", Path: "srv/data"}, {Name: "certs", Path: "certs", ReadOnly: true, Host: true}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "launch"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			assertProto(t, k.last("Launch"), tt.want)
			if r.stdout != "t-7\n" {
				t.Errorf("stdout %q, want the task id", r.stdout)
			}
		})
	}
}

func TestRun_LaunchUsage(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown network", []string{"--network", "overlay"}, `--network: want bridge or host, got "overlay"`},
		{"port without container port", []string{"--port", "http"}, `--port "http": want NAME:CONTAINER_PORT[:HOST_PORT][/udp]`},
		{"port with too many parts", []string{"--port", "http:80:81:82"}, `--port "http:80:81:82": want NAME:CONTAINER_PORT`},
		{"container port 0", []string{"--port", "http:0"}, `--port "http:0": container port "0": want a number from 1 to 65535`},
		{"container port not a number", []string{"--port", "http:web"}, `container port "web"`},
		{"host port too big", []string{"--port", "http:80:70000"}, `--port "http:80:70000": host port "70000"`},
		{"upper case name", []string{"--port", "Http:80"}, `name "Http": want 1-63 characters of [a-z0-9_]`},
		{"empty name", []string{"--port", ":80"}, `name "": want`},
		{"unknown protocol", []string{"--port", "http:80/sctp"}, `protocol "sctp": want tcp or udp`},
		{"host port mapped on the host network", []string{"--network", "host", "--port", "http:80:81"}, `--port "http:80:81": a --network host task listens on its host port`},
	}
	for _, tt := range tests {
		for _, cmd := range [][]string{{"launch", "a-1"}, {"run", "--cpus", "1", "--mem", "1Mi"}} {
			t.Run(cmd[0]+"/"+tt.name, func(t *testing.T) {
				args := append(append(append([]string{"--kernel", url}, cmd...), tt.args...), "--", "server")
				r := runCtl(t, context.Background(), "", args...)
				if r.code != exitUsageError || !strings.Contains(r.stderr, tt.want) {
					t.Errorf("exit %d, stderr %q; want %d and %q", r.code, r.stderr, exitUsageError, tt.want)
				}
			})
		}
	}
	if m := k.methods(); len(m) != 0 {
		t.Errorf("calls sent on usage errors: %v", m)
	}
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"http:8080", "dns:53:5353/udp", "a:1:0/tcp", "x", "x:", ":1", "x:1:2:3", "x:1/", "x:99999", "x:1/udp/tcp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, hostNet := range []bool{false, true} {
			p, err := parsePort(s, hostNet)
			if err != nil {
				continue
			}
			if !portNameRE.MatchString(p.GetName()) || p.GetContainerPort() < 1 && !hostNet || p.GetContainerPort() > 65535 || p.GetHostPort() > 65535 ||
				hostNet && p.GetHostPort() != 0 {
				t.Fatalf("parsePort(%q, %v) = %v", s, hostNet, p)
			}
			if pr := p.GetProtocol(); pr != "" && pr != "tcp" && pr != "udp" {
				t.Fatalf("parsePort(%q) protocol %q", s, pr)
			}
		}
	})
}

func TestRun_Run(t *testing.T) {
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	pending := &syscallsv1.Allocation{Id: "a-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_PENDING}
	grantedEvent := &syscallsv1.Event{Revision: 11, Kind: syscallsv1.EventKind_EVENT_KIND_ALLOCATION_GRANTED, Allocation: granted}
	otherEvent := &syscallsv1.Event{Revision: 10, Kind: syscallsv1.EventKind_EVENT_KIND_ALLOCATION_GRANTED, Allocation: &syscallsv1.Allocation{Id: "a-0"}}
	revokedEvent := &syscallsv1.Event{Revision: 11, Kind: syscallsv1.EventKind_EVENT_KIND_ALLOCATION_REVOKED, Allocation: pending, Reason: "lease expired"}
	tests := []struct {
		name        string
		args        []string
		allocate    *syscallsv1.AllocateResponse
		launchErr   error
		revokeErr   error
		events      []*syscallsv1.Event
		wantCode    int
		wantCalls   []string
		wantStdout  []string
		wantStderr  string
		wantRevoked bool
	}{
		{
			name:       "granted",
			allocate:   &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}, Revision: 9},
			wantCalls:  []string{"Allocate", "Launch"},
			wantStdout: []string{"a-1", "ag-1", "t-1"},
		},
		{
			name:        "pending without --wait",
			allocate:    &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{pending}, PendingReason: "insufficient memory on 3 agents", Revision: 9},
			wantCode:    exitCallError,
			wantCalls:   []string{"Allocate", "Revoke"},
			wantStderr:  "allocation a-1 is pending: insufficient memory on 3 agents (allocation a-1 revoked; pass --wait",
			wantRevoked: true,
		},
		{
			name:       "pending with --wait",
			args:       []string{"--wait"},
			allocate:   &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{pending}, PendingReason: "no agents", Revision: 9},
			events:     []*syscallsv1.Event{otherEvent, grantedEvent},
			wantCalls:  []string{"Allocate", "Watch", "Launch"},
			wantStdout: []string{"a-1", "ag-1", "t-1"},
			wantStderr: "allocation a-1 is pending: no agents; waiting",
		},
		{
			name:        "revoked while waiting",
			args:        []string{"--wait"},
			allocate:    &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{pending}, Revision: 9},
			events:      []*syscallsv1.Event{revokedEvent},
			wantCode:    exitCallError,
			wantCalls:   []string{"Allocate", "Watch", "Revoke"},
			wantStderr:  "revoked while pending: lease expired",
			wantRevoked: true,
		},
		{
			name:        "launch fails",
			allocate:    &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}},
			launchErr:   errorString("boom"),
			wantCode:    exitCallError,
			wantCalls:   []string{"Allocate", "Launch", "Revoke"},
			wantStderr:  "(allocation a-1 revoked)",
			wantRevoked: true,
		},
		{
			// The revoke's failure is said, not hidden behind "revoked".
			name:        "launch fails and so does the revoke",
			allocate:    &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}},
			launchErr:   errorString("boom"),
			revokeErr:   errorString("kernel down"),
			wantCode:    exitCallError,
			wantCalls:   []string{"Allocate", "Launch", "Revoke"},
			wantStderr:  "allocation a-1 NOT revoked: Revoke: Unknown: kernel down; revoke it with: dcosctl revoke a-1",
			wantRevoked: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			k := (&fakeKernel{events: tt.events}).
				replyWith("Allocate", tt.allocate, nil).
				replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1", State: syscallsv1.TaskState_TASK_STATE_RUNNING}}, tt.launchErr).
				replyWith("Revoke", &syscallsv1.RevokeResponse{}, tt.revokeErr)
			url := k.serve(t)
			args := append([]string{"--kernel", url, "run", "--cpus", "0.25", "--mem", "32Mi", "--env", "A=1"}, tt.args...)
			r := runCtl(t, context.Background(), "", append(args, "--", "sleep", "60")...)
			if r.code != tt.wantCode {
				t.Fatalf("exit %d, want %d; stderr %q", r.code, tt.wantCode, r.stderr)
			}
			if got := strings.Join(k.methods(), ","); got != strings.Join(tt.wantCalls, ",") {
				t.Errorf("calls %s, want %s", got, strings.Join(tt.wantCalls, ","))
			}
			assertProto(t, k.last("Allocate"), &syscallsv1.AllocateRequest{Resources: &syscallsv1.Resources{Cpus: 0.25, MemBytes: 32 << 20}, Count: 1})
			if l := k.last("Launch"); l != nil {
				assertProto(t, l, &syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "sleep", Args: []string{"60"}, Env: map[string]string{"A": "1"}})
			}
			if w := k.last("Watch"); w != nil && w.(*syscallsv1.WatchRequest).GetAfterRevision() != 9 {
				t.Errorf("watch after %d, want the Allocate revision 9", w.(*syscallsv1.WatchRequest).GetAfterRevision())
			}
			if tt.wantRevoked && k.last("Revoke").(*syscallsv1.RevokeRequest).GetId() != "a-1" {
				t.Errorf("revoked %v, want a-1", k.last("Revoke"))
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(r.stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, r.stdout)
				}
			}
			if !strings.Contains(r.stderr, tt.wantStderr) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.wantStderr)
			}
		})
	}
}

func TestRun_RunJSON(t *testing.T) {
	isolate(t)
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	k := (&fakeKernel{}).
		replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}}, nil).
		replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1", State: syscallsv1.TaskState_TASK_STATE_RUNNING}}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "-o", "json", "run", "--cpus", "1", "--mem", "1Mi", "--", "true")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	var got struct {
		Allocation struct{ ID, AgentID string } `json:"allocation"`
		Task       struct{ ID string }          `json:"task"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &got); err != nil {
		t.Fatal(err)
	}
	if got.Allocation.ID != "a-1" || got.Task.ID != "t-1" {
		t.Errorf("got %+v from %s", got, r.stdout)
	}
}

func TestRun_Revoke(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	for _, id := range []string{"a-1", "t-2"} {
		r := runCtl(t, context.Background(), "", "--kernel", url, "revoke", id, "--reason", "done")
		if r.code != 0 || r.stdout != "revoked "+id+"\n" {
			t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		if !proto.Equal(k.last("Revoke"), &syscallsv1.RevokeRequest{Id: id, Reason: "done"}) {
			t.Errorf("request %v", k.last("Revoke"))
		}
	}
}

// TestRun_RevokeAll: --all sends one bulk Revoke with the filters and
// prints how many were taken back; misuse is a usage error.
func TestRun_RevokeAll(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).replyWith("Revoke", &syscallsv1.RevokeResponse{RevokedIds: []string{"a-1", "a-2", "a-5"}}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "revoke", "--all", "--role", "batch", "--owner", "spark", "--pending")
	if r.code != 0 || r.stdout != "revoked 3 allocations\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	assertProto(t, k.last("Revoke"), &syscallsv1.RevokeRequest{All: true, Role: "batch", Owner: "spark", Pending: true})
	for name, args := range map[string][]string{
		"id and --all":     {"revoke", "a-1", "--all"},
		"role without all": {"revoke", "a-1", "--role", "x"},
	} {
		r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, args...)...)
		if r.code != exitUsageError {
			t.Errorf("%s: exit %d, want usage error; stderr %q", name, r.code, r.stderr)
		}
	}
}

func TestRun_RunNetwork(t *testing.T) {
	isolate(t)
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	k := (&fakeKernel{}).
		replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}}, nil).
		replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1", State: syscallsv1.TaskState_TASK_STATE_RUNNING}}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "run", "--cpus", "1", "--mem", "1Mi", "--network", "bridge", "--port", "http:8080/tcp", "--", "server")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	assertProto(t, k.last("Launch"), &syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "server", Network: "bridge",
		Ports: []*syscallsv1.PortRequest{{Name: "http", ContainerPort: 8080, Protocol: "tcp"}}})
}

// TestRun_PortsResource: run asks for as many host ports as its --port
// flags take from the allocation, unless --ports says otherwise.
func TestRun_PortsResource(t *testing.T) {
	isolate(t)
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	k := (&fakeKernel{}).replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}}, nil).
		replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1", State: syscallsv1.TaskState_TASK_STATE_RUNNING, Ports: []*syscallsv1.PortMapping{{Name: "http", ContainerPort: 8080, HostPort: 31000}}}}, nil)
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want int64
	}{
		{"no ports", nil, 0},
		{"bridge: dynamic ones count", []string{"--port", "http:8080", "--port", "dns:53:5353/udp", "--port", "b:1:0"}, 2},
		{"host: names without a port count", []string{"--network", "host", "--port", "http", "--port", "admin:9000"}, 1},
		{"--ports wins", []string{"--ports", "4", "--port", "http:8080"}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := append([]string{"--kernel", url, "run", "--cpus", "1", "--mem", "1Mi"}, tt.args...)
			r := runCtl(t, context.Background(), "", append(args, "--", "x")...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			if got := k.last("Allocate").(*syscallsv1.AllocateRequest).GetResources().GetPorts(); got != tt.want {
				t.Errorf("resources.ports %d, want %d", got, tt.want)
			}
			if !strings.Contains(r.stdout, "http:31000->8080") {
				t.Errorf("run output lacks the task's ports:\n%s", r.stdout)
			}
		})
	}
}

// TestRun_RunUser: --user is the task's user (LaunchRequest.user).
func TestRun_RunUser(t *testing.T) {
	isolate(t)
	granted := &syscallsv1.Allocation{Id: "a-1", AgentId: "ag-1", State: syscallsv1.AllocationState_ALLOCATION_STATE_GRANTED}
	k := (&fakeKernel{}).
		replyWith("Allocate", &syscallsv1.AllocateResponse{Allocations: []*syscallsv1.Allocation{granted}}, nil).
		replyWith("Launch", &syscallsv1.LaunchResponse{Task: &syscallsv1.Task{Id: "t-1", State: syscallsv1.TaskState_TASK_STATE_RUNNING}}, nil)
	url := k.serve(t)
	r := runCtl(t, context.Background(), "", "--kernel", url, "run", "--cpus", "1", "--mem", "1Mi", "--role", "db", "--user", "postgres", "--", "server")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	assertProto(t, k.last("Launch"), &syscallsv1.LaunchRequest{AllocationId: "a-1", Command: "server", User: "postgres"})
}
