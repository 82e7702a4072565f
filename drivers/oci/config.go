package oci

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
)

// Config is a task's driver configuration (TaskConfig.DriverConfig), JSON
// with these fields; unknown fields are refused.
type Config struct {
	// Image is the reference to run, e.g. "127.0.0.1:5000/nginx:test" or
	// "REPO@sha256:...". Required.
	Image string `json:"image"`
	// ReadOnlyRoot mounts the image's root filesystem read-only (the
	// sandbox at SandboxPath stays writable).
	ReadOnlyRoot bool `json:"readonly_root,omitempty"`
	// Hostname is the container's hostname; default the task's id.
	Hostname string `json:"hostname,omitempty"`
}

// maxConfigBytes bounds a task's driver config (the kernel allows 64 KiB).
const maxConfigBytes = 64 << 10

// ParseConfig decodes and checks b; errors name the field.
func ParseConfig(b []byte) (*Config, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil, errors.New("driver_config: required: {\"image\": \"REF\"}")
	}
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("driver_config: %d bytes, more than %d", len(b), maxConfigBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var c Config
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("driver_config: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("driver_config: trailing data after the JSON object")
	}
	switch {
	case c.Image == "":
		return nil, errors.New("driver_config.image: required (an image reference such as registry.example.com/nginx:1.22)")
	case len(c.Image) > 512:
		return nil, fmt.Errorf("driver_config.image: %d bytes, more than 512", len(c.Image))
	case strings.ContainsAny(c.Image, " \t\r\n\x00"):
		return nil, fmt.Errorf("driver_config.image: %q contains whitespace or NUL", c.Image)
	}
	if err := checkHostname(c.Hostname); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkHostname accepts "" or an RFC 1123 host name of at most 64 bytes.
func checkHostname(h string) error {
	if h == "" {
		return nil
	}
	if len(h) > 64 {
		return fmt.Errorf("driver_config.hostname: %d bytes, more than 64", len(h))
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("driver_config.hostname: %q is not a host name", h)
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return fmt.Errorf("driver_config.hostname: %q is not a host name", h)
			}
		}
	}
	return nil
}
