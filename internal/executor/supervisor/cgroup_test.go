package supervisor

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestCgroupHomes(t *testing.T) {
	t.Parallel()
	const hybridMounts = `35 25 0:30 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
36 35 0:31 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw
37 35 0:32 / /sys/fs/cgroup/systemd rw,nosuid - cgroup cgroup rw,xattr,name=systemd
40 35 0:35 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
41 35 0:36 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
42 35 0:37 /docker/abc /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
43 35 0:38 /elsewhere /sys/fs/cgroup/blkio rw,nosuid - cgroup cgroup rw,blkio
`
	const hybridCgroup = `9:name=systemd:/
7:pids:/docker/abc/task
6:blkio:/mine
4:memory:/process_api/073f
2:cpu,cpuacct:/
0::/user.slice
`
	tests := []struct {
		name       string
		mounts, cg string
		want       []hierarchy
	}{
		{name: "hybrid", mounts: hybridMounts, cg: hybridCgroup, want: []hierarchy{
			{mount: "/sys/fs/cgroup/unified", v2: true, home: "/sys/fs/cgroup/unified/user.slice"},
			{mount: "/sys/fs/cgroup/systemd", home: "/sys/fs/cgroup/systemd"},
			{mount: "/sys/fs/cgroup/memory", home: "/sys/fs/cgroup/memory/process_api/073f"},
			{mount: "/sys/fs/cgroup/cpu,cpuacct", home: "/sys/fs/cgroup/cpu,cpuacct"},
			{mount: "/sys/fs/cgroup/pids", home: "/sys/fs/cgroup/pids/task"},
			{mount: "/sys/fs/cgroup/blkio"}, // our cgroup is outside the mount
		}},
		{name: "pure v2", mounts: "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n", cg: "0::/a/b\n",
			want: []hierarchy{{mount: "/sys/fs/cgroup", v2: true, home: "/sys/fs/cgroup/a/b"}}},
		{name: "garbage", mounts: "x - y\n\n -", cg: "::\nfoo", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := cgroupHomes([]byte(tt.mounts), []byte(tt.cg))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(hierarchy{})); diff != "" {
				t.Errorf("cgroupHomes (-want +got):\n%s", diff)
			}
		})
	}
	hs, _ := cgroupHomes([]byte(hybridMounts), []byte(hybridCgroup))
	for dir, want := range map[string]string{
		"/sys/fs/cgroup/memory/x/y":  "/sys/fs/cgroup/memory",
		"/sys/fs/cgroup/unified/t":   "/sys/fs/cgroup/unified",
		"/sys/fs/cgroup/memoryx/t":   "",
		"/sys/fs/cgroup/cpu,cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
	} {
		h, ok := hierarchyOf(hs, dir)
		if got := h.mount; got != want || ok != (want != "") {
			t.Errorf("hierarchyOf(%s) = %q, %v; want %q", dir, got, ok, want)
		}
	}
}

func FuzzCgroupHomes(f *testing.F) {
	f.Add([]byte("36 35 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"), []byte("0::/a\n"))
	f.Fuzz(func(t *testing.T, mounts, cg []byte) { cgroupHomes(mounts, cg) })
}

func TestLookPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, cmd, path, dir, want, wantErr string
	}{
		{name: "in PATH", cmd: "sh", path: "/nonexistent:/bin", want: "/bin/sh"},
		{name: "relative PATH entry skipped", cmd: "sh", path: "bin", dir: "/", wantErr: `command "sh": not found in PATH "bin"`},
		{name: "slash relative to dir", cmd: "bin/sh", dir: "/", want: "bin/sh"},
		{name: "directory", cmd: "/bin", wantErr: `command "/bin": permission denied`},
		{name: "missing", cmd: "/no/such", wantErr: `command "/no/such": stat /no/such`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookPath(tt.cmd, tt.path, tt.dir)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("lookPath = %q, %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("lookPath = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}
