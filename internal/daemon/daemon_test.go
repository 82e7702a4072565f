package daemon

import (
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

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

// TestEnsureDevTokens: dcosd dev creates a missing tokens file, keeps the
// tokens of a good one, and refuses a malformed one without rewriting it
// (it used to be replaced, dropping the framework tokens in it).
func TestEnsureDevTokens(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state", "tokens.json")
	op, ag, in, err := ensureDevTokens(path, filepath.Join(dir, "state"))
	if err != nil || op.Role != "operator" || ag.Role != "agent" || in.Role != "framework" || in.Name != "init" {
		t.Fatalf("new file: %+v %+v %+v %v", op, ag, in, err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tokens file mode: %v %v, want 0600", fi.Mode(), err)
	}
	op2, ag2, in2, err := ensureDevTokens(path, filepath.Join(dir, "state"))
	if err != nil || op2 != op || ag2 != ag || in2 != in {
		t.Fatalf("second start changed the tokens: %+v %+v %+v %v", op2, ag2, in2, err)
	}
	// Another framework's token is not taken for the init's.
	other := []byte(`{"tokens":[{"token":"0123456789abcdef0123","name":"spark","role":"framework"}]}`)
	otherPath := filepath.Join(dir, "other.json")
	if err := os.WriteFile(otherPath, other, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, in3, err := ensureDevTokens(otherPath, dir); err != nil || in3.Name != "init" || in3.Token == "0123456789abcdef0123" {
		t.Fatalf("with a spark token: init = %+v, %v; want a token of its own", in3, err)
	}

	bad := []byte(`{"tokens":[{"token":"0123456789abcdef0123","name":"spark","role":"framework"},]}`)
	badPath := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(badPath, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := ensureDevTokens(badPath, dir); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Fatalf("malformed file: got %v, want an error naming it", err)
	}
	if got, _ := os.ReadFile(badPath); string(got) != string(bad) {
		t.Fatalf("the malformed file was rewritten:\n%s", got)
	}
}

// TestParseRoles_FlagSplit: the documented --role-quota NAME:cpus=4,mem=8Gi
// works through the real flag parser, which splits values at commas (it
// failed with `--role-quota "mem=8Gi"`).
func TestParseRoles_FlagSplit(t *testing.T) {
	var got map[string]kernel.RoleConfig
	app := &cli.App{Flags: []cli.Flag{&cli.StringSliceFlag{Name: "role-quota"}}, Action: func(c *cli.Context) (err error) {
		got, err = parseRoles(nil, c.StringSlice("role-quota"))
		return err
	}}
	if err := app.Run([]string{"dcosd", "--role-quota", "batch:cpus=4,mem=1Gi", "--role-quota", "ml:disk=10Gi"}); err != nil {
		t.Fatal(err)
	}
	want := map[string]kernel.RoleConfig{"batch": {Quota: kernel.Resources{MilliCPU: 4000, Mem: 1 << 30}}, "ml": {Quota: kernel.Resources{Disk: 10 << 30}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func TestParseRoleInts(t *testing.T) {
	got, err := parseRoleInts("--role-max-pending", []string{"batch=30000", "*=5", "web=-1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int{"batch": 30000, "": 5, "web": -1}; !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"batch", "=3", "batch=x", "batch=-2"} {
		if _, err := parseRoleInts("--role-max-pending", []string{bad}); err == nil || !strings.Contains(err.Error(), "--role-max-pending") {
			t.Errorf("%q: got %v, want an error naming the flag", bad, err)
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
