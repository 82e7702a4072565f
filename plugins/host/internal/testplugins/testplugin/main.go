// Command testplugin is the plugin the host's tests install under names
// like dcos-driver-<name>: it serves the fake driver, or the fake isolator
// when its file name starts with dcos-isolator-.
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
	if strings.HasPrefix(filepath.Base(os.Args[0]), "dcos-isolator-") {
		kind = contract.KindIsolator
	}
	fake.Serve(kind)
}
