package oci

import (
	"maps"
	"testing"
)

func TestContainerEnv(t *testing.T) {
	got := containerEnv(
		[]string{"PATH=/usr/local/nginx/bin:/usr/bin", "NGINX_VERSION=1.22", "HOME=/srv", "BAD"},
		map[string]string{"PATH": "/agent/bin", "HOME": "/var/lib/dcos/sandbox/t-1", "DCOS_SANDBOX": "/var/lib/dcos/sandbox/t-1",
			"DCOS_TASK_ID": "t-1", "NGINX_VERSION": "override", "LOG": "/var/lib/dcos/sandbox/t-1/log"},
		"/var/lib/dcos/sandbox/t-1", "/root")
	want := map[string]string{"PATH": "/usr/local/nginx/bin:/usr/bin", "HOME": "/srv", "NGINX_VERSION": "override",
		"DCOS_SANDBOX": SandboxPath, "DCOS_TASK_ID": "t-1", "LOG": SandboxPath + "/log"}
	if !maps.Equal(got, want) {
		t.Fatalf("containerEnv = %v, want %v", got, want)
	}
	bare := containerEnv(nil, nil, "", "/home/x")
	if bare["PATH"] != defaultPath || bare["HOME"] != "/home/x" {
		t.Fatalf("containerEnv of an image without env = %v", bare)
	}
}

func TestHostnameOf(t *testing.T) {
	for in, want := range map[string]string{"t-12": "t-12", "T_7.x": "t-7-x", "---": "task"} {
		if got := hostnameOf(in); got != want {
			t.Errorf("hostnameOf(%q) = %q, want %q", in, got, want)
		}
	}
}
