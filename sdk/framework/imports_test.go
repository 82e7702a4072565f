package framework

import (
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestImports checks that the package's own (non-test) files import only
// the standard library, connect, protobuf and the public ABI: never the
// kernel's packages (internal/, kernel/, agent/, ...).
func TestImports(t *testing.T) {
	ents, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"connectrpc.com/connect", "google.golang.org/protobuf/", "github.com/dcos-kernel/dcos/syscalls/", "github.com/dcos-kernel/dcos/sdk/transport"}
	files := 0
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		files++
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, im := range f.Imports {
			path, _ := strconv.Unquote(im.Path.Value)
			std := !strings.Contains(strings.SplitN(path, "/", 2)[0], ".")
			ok := std
			for _, a := range allowed {
				ok = ok || path == a || strings.HasPrefix(path, a)
			}
			if !ok {
				t.Errorf("%s imports %s: the SDK may import only the standard library, connect, protobuf, syscalls/ and sdk/transport", name, path)
			}
		}
	}
	if files == 0 {
		t.Fatal("no source files found")
	}
}
