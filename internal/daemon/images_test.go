package daemon

import (
	"encoding/base64"
	"strings"
	"testing"

	"github.com/dcos-kernel/dcos/drivers/oci"
)

func TestParseRegistryAuth(t *testing.T) {
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	got, err := parseRegistryAuth([]byte(`{"auths": {
		"registry.example.com": {"auth": "` + b64("alice:s3cr:et") + `"},
		"https://index.docker.io/v1/": {"username": "bob", "password": "pw"},
		"127.0.0.1:5000": {"registrytoken": "tok"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]oci.Credentials{
		"registry.example.com": {Username: "alice", Password: "s3cr:et"},
		"index.docker.io":      {Username: "bob", Password: "pw"},
		"127.0.0.1:5000":       {Token: "tok"},
	}
	if len(got) != len(want) {
		t.Fatalf("parseRegistryAuth = %+v, want %+v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %+v, want %+v", k, got[k], w)
		}
	}
	for _, tc := range []struct{ in, want string }{
		{`nope`, "not a Docker config.json"},
		{`{"auths": {"r": {"auth": "!!"}}}`, `auths["r"].auth: not base64`},
		{`{"auths": {"r": {"auth": "` + b64("nocolon") + `"}}}`, `auths["r"].auth: want base64 of USER:PASSWORD`},
		{`{"auths": {"r": {}}}`, `auths["r"]: no auth`},
		{`{"auths": {"r": {"identitytoken": "x"}}}`, "identitytoken"},
		{`{"auths": {"https://": {"auth": "` + b64("a:b") + `"}}}`, "not a registry host"},
	} {
		if _, err := parseRegistryAuth([]byte(tc.in)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseRegistryAuth(%s) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
}

func FuzzParseRegistryAuth(f *testing.F) {
	f.Add([]byte(`{"auths": {"r:5000": {"auth": "YTpi"}}}`))
	f.Add([]byte(`{"auths": {"r": {"registrytoken": "t"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := parseRegistryAuth(b)
		if err != nil {
			return
		}
		for host, c := range m {
			if host == "" || strings.Contains(host, "/") || c.Token == "" && c.Username == "" {
				t.Fatalf("accepted %q → %+v", host, c)
			}
		}
	})
}
