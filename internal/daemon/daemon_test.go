package daemon

import (
	"reflect"
	"testing"

	"github.com/dcos-kernel/dcos/kernel"
)

func TestParseRoles(t *testing.T) {
	got, err := parseRoles([]string{"web=2", "batch=0.5"}, []string{"batch:cpus=4,mem=1Gi", "ml:disk=10Gi"})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]kernel.RoleConfig{
		"web":   {Weight: 2},
		"batch": {Weight: 0.5, Quota: kernel.Resources{MilliCPU: 4000, Mem: 1 << 30}},
		"ml":    {Quota: kernel.Resources{Disk: 10 << 30}},
	}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("role %s: got %+v, want %+v", k, got[k], v)
		}
	}
	for _, bad := range [][2][]string{
		{{"web"}, nil}, {{"web=0"}, nil}, {{"web=-1"}, nil}, {{"=2"}, nil}, {{"web=NaN"}, nil},
		{nil, {"batch"}}, {nil, {"batch:gpus=1"}}, {nil, {":cpus=1"}},
	} {
		if _, err := parseRoles(bad[0], bad[1]); err == nil {
			t.Errorf("parseRoles(%q, %q): want an error", bad[0], bad[1])
		}
	}
}

func TestParseHostPorts(t *testing.T) {
	for in, want := range map[string]string{"31000-32000": "31000-32000", "none": "", "": "", "8080": "8080-8080"} {
		if got, err := parseHostPorts(in); err != nil || got != want {
			t.Errorf("parseHostPorts(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"32000-31000", "0-5", "x", "1-70000"} {
		if _, err := parseHostPorts(bad); err == nil {
			t.Errorf("parseHostPorts(%q): want an error", bad)
		}
	}
}

func TestParseRoleUsers(t *testing.T) {
	// As the flag parser hands them over: split at commas.
	got, err := parseRoleUsers([]string{"db=root", "postgres", "ci=*", "web=www"})
	want := map[string][]string{"db": {"root", "postgres"}, "ci": {"*"}, "web": {"www"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("parseRoleUsers = %v, %v; want %v", got, err, want)
	}
	for _, bad := range [][]string{{"root"}, {"db="}, {"db=Root"}, {"=root"}} {
		if _, err := parseRoleUsers(bad); err == nil {
			t.Errorf("parseRoleUsers(%q): want an error", bad)
		}
	}
}
