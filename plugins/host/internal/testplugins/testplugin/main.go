// Command testplugin is the plugin the host's tests install under names
// like dcos-driver-<name>: it serves the fake plugin of the kind its file
// name gives (dcos-<kind>-<name>), a driver if it gives none.
package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/dcos-kernel/dcos/plugins/contract"
	"github.com/dcos-kernel/dcos/plugins/host/internal/testplugins/fake"
)

func main() {
	kind := contract.KindDriver
	for _, k := range []string{contract.KindIsolator, contract.KindNet, contract.KindStorage} {
		if strings.HasPrefix(filepath.Base(os.Args[0]), "dcos-"+k+"-") {
			kind = k
		}
	}
	fake.Serve(kind)
}
