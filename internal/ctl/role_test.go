package ctl

import (
	"context"
	"strings"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

func TestRun_RoleLs(t *testing.T) {
	isolate(t)
	res := &syscallsv1.RoleListResponse{Revision: 9, Roles: []*syscallsv1.Role{
		{Name: "", Weight: 1, Usage: &syscallsv1.Resources{Cpus: 0.5, MemBytes: 64 << 20}},
		{Name: "batch", Weight: 2.5, Quota: &syscallsv1.Resources{Cpus: 2, MemBytes: 1 << 30, Ports: 4},
			Usage: &syscallsv1.Resources{Cpus: 2, MemBytes: 512 << 20}, Pending: 3},
		{Name: "idle", Weight: 1, Usage: &syscallsv1.Resources{}, CpuClass: syscallsv1.CpuClass_CPU_CLASS_IDLE.Enum(), Cpuset: proto.String("1-3,5")},
	}}
	k := (&fakeKernel{}).replyWith("RoleList", res, nil)
	url := k.serve(t)
	t.Run("table", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "--kernel", url, "role", "ls")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		want := [][]string{
			{"NAME", "WEIGHT", "CPU-CLASS", "CPUSET", "QUOTA", "USAGE", "PENDING"},
			{"-", "1", "normal", "-", "-", "cpus=0.5,mem=64Mi", "0"},
			{"batch", "2.5", "normal", "-", "cpus=2,mem=1Gi,ports=4", "cpus=2,mem=512Mi", "3"},
			{"idle", "1", "idle", "1-3,5", "-", "-", "0"},
		}
		if got := rows(r.stdout); !equalRows(got, want) {
			t.Errorf("got\n%s\nwant %q", r.stdout, want)
		}
		assertProto(t, k.last("RoleList"), &syscallsv1.RoleListRequest{})
	})
	t.Run("json", func(t *testing.T) {
		r := runCtl(t, context.Background(), "", "--kernel", url, "role", "ls", "-o", "json")
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		got := &syscallsv1.RoleListResponse{}
		if err := protojson.Unmarshal([]byte(r.stdout), got); err != nil {
			t.Fatal(err)
		}
		assertProto(t, got, res)
	})
}

func TestRun_RoleSet(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).reply("RoleSet", func(m proto.Message) (proto.Message, error) {
		req := m.(*syscallsv1.RoleSetRequest)
		return &syscallsv1.RoleSetResponse{Revision: 7, Role: &syscallsv1.Role{Name: req.GetName(), Weight: 2, Quota: req.GetQuota(), Usage: &syscallsv1.Resources{}, CpuClass: req.CpuClass, Cpuset: req.Cpuset}}, nil
	})
	url := k.serve(t)
	w := 2.0
	tests := []struct {
		name string
		args []string
		want *syscallsv1.RoleSetRequest
		row  []string
	}{
		{"weight", []string{"web", "--weight", "2"}, &syscallsv1.RoleSetRequest{Name: "web", Weight: &w}, []string{"web", "2", "normal", "-", "-", "-", "0"}},
		{"quota", []string{"batch", "--quota", "cpus=2,mem=1Gi,disk=10Gi,ports=8"},
			&syscallsv1.RoleSetRequest{Name: "batch", Quota: &syscallsv1.Resources{Cpus: 2, MemBytes: 1 << 30, DiskBytes: 10 << 30, Ports: 8}},
			[]string{"batch", "2", "normal", "-", "cpus=2,mem=1Gi,disk=10Gi,ports=8", "-", "0"}},
		{"both", []string{"batch", "--weight", "2", "--quota", "ports=3"},
			&syscallsv1.RoleSetRequest{Name: "batch", Weight: &w, Quota: &syscallsv1.Resources{Ports: 3}}, []string{"batch", "2", "normal", "-", "ports=3", "-", "0"}},
		{"clear with none", []string{"batch", "--quota", "none"}, &syscallsv1.RoleSetRequest{Name: "batch", Quota: &syscallsv1.Resources{}}, []string{"batch", "2", "normal", "-", "-", "-", "0"}},
		{"clear with empty", []string{"batch", "--quota", ""}, &syscallsv1.RoleSetRequest{Name: "batch", Quota: &syscallsv1.Resources{}}, []string{"batch", "2", "normal", "-", "-", "-", "0"}},
		{"cpu class idle", []string{"batch", "--cpu-class", "idle"},
			&syscallsv1.RoleSetRequest{Name: "batch", CpuClass: syscallsv1.CpuClass_CPU_CLASS_IDLE.Enum()}, []string{"batch", "2", "idle", "-", "-", "-", "0"}},
		{"cpu class normal", []string{"batch", "--cpu-class", "Normal"},
			&syscallsv1.RoleSetRequest{Name: "batch", CpuClass: syscallsv1.CpuClass_CPU_CLASS_NORMAL.Enum()}, []string{"batch", "2", "normal", "-", "-", "-", "0"}},
		{"cpuset", []string{"batch", "--cpuset", "1-3"},
			&syscallsv1.RoleSetRequest{Name: "batch", Cpuset: proto.String("1-3")}, []string{"batch", "2", "normal", "1-3", "-", "-", "0"}},
		{"cpuset clear", []string{"batch", "--cpuset", ""},
			&syscallsv1.RoleSetRequest{Name: "batch", Cpuset: proto.String("")}, []string{"batch", "2", "normal", "-", "-", "-", "0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "role", "set"}, tt.args...)...)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			got := k.last("RoleSet").(*syscallsv1.RoleSetRequest)
			assertProto(t, got, tt.want)
			if (got.Quota != nil) != (tt.want.Quota != nil) {
				t.Errorf("quota presence %v, want %v (an empty quota clears, an absent one keeps)", got.Quota != nil, tt.want.Quota != nil)
			}
			if (got.Cpuset != nil) != (tt.want.Cpuset != nil) {
				t.Errorf("cpuset presence %v, want %v (\"\" clears, absent keeps)", got.Cpuset != nil, tt.want.Cpuset != nil)
			}
			if (got.CpuClass != nil) != (tt.want.CpuClass != nil) {
				t.Errorf("cpu_class presence %v, want %v (NORMAL is sent when asked for)", got.CpuClass != nil, tt.want.CpuClass != nil)
			}
			want := [][]string{{"NAME", "WEIGHT", "CPU-CLASS", "CPUSET", "QUOTA", "USAGE", "PENDING"}, tt.row}
			if rs := rows(r.stdout); !equalRows(rs, want) {
				t.Errorf("got\n%s\nwant %q", r.stdout, want)
			}
		})
	}
}

func TestRun_RoleUsageErrors(t *testing.T) {
	isolate(t)
	k := &fakeKernel{}
	url := k.serve(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown subcommand", []string{"role", "frob"}, `unknown role command "frob"`},
		{"set: no name", []string{"role", "set", "--weight", "2"}, "want one NAME"},
		{"set: two names", []string{"role", "set", "a", "b", "--weight", "2"}, "want one NAME"},
		{"set: nothing", []string{"role", "set", "web"}, "nothing to set"},
		{"set: zero weight", []string{"role", "set", "web", "--weight", "0"}, `--weight "0": want a number > 0`},
		{"set: bad weight", []string{"role", "set", "web", "--weight", "heavy"}, `--weight "heavy"`},
		{"set: unknown resource", []string{"role", "set", "web", "--quota", "gpus=1"}, `unknown resource "gpus"`},
		{"set: bad ports", []string{"role", "set", "web", "--quota", "ports=-1"}, "ports"},
		{"set: ports twice", []string{"role", "set", "web", "--quota", "ports=1,ports=2"}, "ports given twice"},
		{"set: bad mem", []string{"role", "set", "web", "--quota", "mem=lots"}, "mem"},
		{"set: bad cpu class", []string{"role", "set", "web", "--cpu-class", "low"}, `--cpu-class "low": want normal or idle`},
		{"ls: argument", []string{"role", "ls", "x"}, "takes no arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runCtl(t, context.Background(), "", append([]string{"--kernel", url}, tt.args...)...)
			if r.code != exitUsageError {
				t.Errorf("exit %d, want %d; stderr %q", r.code, exitUsageError, r.stderr)
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q does not contain %q", r.stderr, tt.want)
			}
		})
	}
	if m := k.methods(); len(m) != 0 {
		t.Errorf("usage errors sent calls: %v", m)
	}
}

func TestRun_RoleKernelErrors(t *testing.T) {
	isolate(t)
	k := (&fakeKernel{}).
		replyWith("RoleSet", nil, connect.NewError(connect.CodePermissionDenied, errorString("role set: operators only, not a framework"))).
		replyWith("RoleList", nil, connect.NewError(connect.CodeUnauthenticated, errorString("no token")))
	url := k.serve(t)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"set", "web", "--weight", "2"}, "RoleSet: PermissionDenied: role set: operators only"},
		{[]string{"ls"}, "RoleList: Unauthenticated: no token"},
	} {
		r := runCtl(t, context.Background(), "", append([]string{"--kernel", url, "role"}, tt.args...)...)
		if r.code != exitCallError || !strings.Contains(r.stderr, tt.want) || r.stdout != "" {
			t.Errorf("role %v: exit %d, stderr %q, stdout %q; want %d, %q", tt.args, r.code, r.stderr, r.stdout, exitCallError, tt.want)
		}
	}
}
