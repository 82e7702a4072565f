// Package plugintest starts a plugin binary the way the agent does: through
// the real go-plugin handshake, with AutoMTLS and a SecureConfig sha256
// checksum, and returns a typed client over real gRPC. A vendor uses it to
// test their plugin; it is not the agent's plugin host.
package plugintest
