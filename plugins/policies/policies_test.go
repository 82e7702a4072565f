package policies_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/dcos-kernel/dcos/plugins/policies"
)

func TestNames(t *testing.T) {
	want := []string{"binpack", "drf", "priority", "spread"}
	if got := policies.Names(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Names() = %v, want %v", got, want)
	}
	for _, name := range want {
		b, ok := policies.Builtin(name)
		if !ok {
			t.Fatalf("Builtin(%q) missing", name)
		}
		if !bytes.HasPrefix(b, []byte("\x00asm")) || !bytes.Contains(b, []byte("dcos_policy_abi_version")) || !bytes.Contains(b, []byte("dcos_place")) {
			t.Errorf("%s.wasm is not a policy module", name)
		}
	}
	if _, ok := policies.Builtin(policies.Default); !ok {
		t.Errorf("Default %q is not built in", policies.Default)
	}
	for _, bad := range []string{"", "nope", "drf.wasm", "../policies/drf", "*", "d?f"} {
		if _, ok := policies.Builtin(bad); ok {
			t.Errorf("Builtin(%q) found something", bad)
		}
	}
}

// buildFlags are generate.go's: keep them in step.
var buildFlags = []string{"build", "-buildmode=c-shared", "-trimpath", "-buildvcs=false", "-ldflags=-buildid="}

// TestBuiltinsUpToDate rebuilds every module from its source and compares
// it with the committed bytes. It is skipped only when no go command is
// on PATH. A Go toolchain other than the one that built the committed
// modules also makes it fail: regenerate with the repository's toolchain.
func TestBuiltinsUpToDate(t *testing.T) {
	gocmd, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH to rebuild the modules with")
	}
	srcs, err := filepath.Glob("*/wasm/main.go")
	if err != nil {
		t.Fatal(err)
	}
	var built []string
	for _, src := range srcs {
		built = append(built, filepath.Dir(filepath.Dir(src)))
	}
	if !reflect.DeepEqual(built, policies.Names()) {
		t.Errorf("sources %v, modules %v: run go generate ./plugins/policies", built, policies.Names())
	}
	dir := t.TempDir()
	for _, name := range built {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(dir, name+".wasm")
			args := append(append([]string{}, buildFlags...), "-o", out, "./"+name+"/wasm")
			cmd := exec.Command(gocmd, args...)
			cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
			if msg, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("go %v: %v\n%s", args, err, msg)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := policies.Builtin(name)
			if !bytes.Equal(got, want) {
				t.Fatalf("%s.wasm (%d bytes) differs from a rebuild of ./%s/wasm (%d bytes): run go generate ./plugins/policies", name, len(want), name, len(got))
			}
		})
	}
}
