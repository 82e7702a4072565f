package policies

// Rebuild every built-in module from its source. The flags make the build
// reproducible (no paths, no build ID, no VCS stamp), so a rebuild with
// the same Go toolchain gives the committed bytes; TestBuiltinsUpToDate
// checks that with the same flags (buildFlags in policies_test.go).

//go:generate -command wasmbuild env GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -trimpath -buildvcs=false -ldflags=-buildid=
//go:generate wasmbuild -o binpack.wasm ./binpack/wasm
//go:generate wasmbuild -o drf.wasm ./drf/wasm
//go:generate wasmbuild -o priority.wasm ./priority/wasm
//go:generate wasmbuild -o spread.wasm ./spread/wasm
