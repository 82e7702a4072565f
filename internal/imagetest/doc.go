// Package imagetest is a test kit for container images: it starts Debian's
// docker-registry on 127.0.0.1 (anonymous or with basic auth), builds images
// from directories or crafted tar streams with go-containerregistry and pushes
// them, and damages a registry on purpose (a corrupted layer blob, an image
// for another architecture, a malformed manifest) so that pull paths can be
// tested against real bad input.
//
// It is for tests only: every helper takes a testing.TB, fails the test on
// error and cleans up in t.Cleanup. It is not a registry client for
// production code (that is drivers/oci/internal/image).
package imagetest
