package oci

import (
	"strings"
	"testing"
)

func TestParseConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in, wantErr string
		want              Config
	}{
		{name: "image", in: `{"image":"127.0.0.1:5000/nginx:test"}`, want: Config{Image: "127.0.0.1:5000/nginx:test"}},
		{name: "all", in: `{"image":"r/x@sha256:ab","readonly_root":true,"hostname":"web-1"}`,
			want: Config{Image: "r/x@sha256:ab", ReadOnlyRoot: true, Hostname: "web-1"}},
		{name: "empty", in: ``, wantErr: "driver_config: required"},
		{name: "no image", in: `{}`, wantErr: "driver_config.image: required"},
		{name: "unknown field", in: `{"image":"x","imagee":"y"}`, wantErr: `unknown field "imagee"`},
		{name: "trailing", in: `{"image":"x"} {}`, wantErr: "trailing data"},
		{name: "not json", in: `image=x`, wantErr: "driver_config: invalid character"},
		{name: "space in ref", in: `{"image":"a b"}`, wantErr: "driver_config.image"},
		{name: "bad hostname", in: `{"image":"x","hostname":"-a"}`, wantErr: "driver_config.hostname"},
		{name: "long hostname", in: `{"image":"x","hostname":"` + strings.Repeat("a", 65) + `"}`, wantErr: "more than 64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseConfig([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseConfig(%q) = %v, want an error containing %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil || *c != tc.want {
				t.Fatalf("ParseConfig(%q) = %+v, %v; want %+v", tc.in, c, err, tc.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte(`{"image":"127.0.0.1:5000/nginx:test","readonly_root":true}`))
	f.Add([]byte(`{"image":""}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig(b)
		if err == nil && (c.Image == "" || strings.ContainsAny(c.Image, " \n\x00") || checkHostname(c.Hostname) != nil) {
			t.Fatalf("ParseConfig(%q) accepted %+v", b, c)
		}
	})
}

func TestResolveUser(t *testing.T) {
	root := t.TempDir()
	writeFile(t, root, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/usr/sbin/nologin\nnobody:x:65534:65534::/nonexistent:/bin/false\n")
	writeFile(t, root, "etc/group", "root:x:0:\nwww-data:x:33:\nadm:x:4:www-data,syslog\nstaff:x:50:\n")
	for _, tc := range []struct {
		spec    string
		want    User
		wantErr string
	}{
		{spec: "", want: User{UID: 0, GID: 0, Home: "/root"}},
		{spec: "www-data", want: User{UID: 33, GID: 33, Groups: []uint32{4}, Home: "/var/www"}},
		{spec: "33", want: User{UID: 33, GID: 33, Groups: []uint32{4}, Home: "/var/www"}},
		{spec: "1234", want: User{UID: 1234, GID: 0, Home: "/"}},
		{spec: "www-data:staff", want: User{UID: 33, GID: 50, Groups: []uint32{4}, Home: "/var/www"}},
		{spec: "1000:1000", want: User{UID: 1000, GID: 1000, Home: "/"}},
		{spec: "mallory", wantErr: `user "mallory": no such user`},
		{spec: "www-data:nogroup", wantErr: `no such group "nogroup"`},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			c, err := ResolveUser(root, tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ResolveUser(%q) = %+v, %v; want error %q", tc.spec, c, err, tc.wantErr)
				}
				return
			}
			if err != nil || c.UID != tc.want.UID || c.GID != tc.want.GID || c.Home != tc.want.Home || !equalIDs(c.Groups, tc.want.Groups) {
				t.Fatalf("ResolveUser(%q) = %+v, %v; want %+v", tc.spec, c, err, tc.want)
			}
		})
	}
}

// A /etc/passwd that links out of the image is not read from the host.
func TestResolveUser_LinkOutOfImage(t *testing.T) {
	root := t.TempDir()
	host := t.TempDir()
	writeFile(t, host, "passwd", "mallory:x:7:7::/:/bin/sh\n")
	mkdirAll(t, root, "etc")
	symlink(t, host+"/passwd", root+"/etc/passwd")
	if c, err := ResolveUser(root, "mallory"); err == nil {
		t.Fatalf("ResolveUser through a link out of the image = %+v, want no such user", c)
	}
}

func equalIDs(a, b []uint32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
