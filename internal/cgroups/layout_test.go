package cgroups

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestBuildLayout(t *testing.T) {
	tests := []struct {
		name    string
		mode    Mode
		v1      map[string]Hierarchy
		unified *Hierarchy
		paths   map[string]string // taskPaths("", "t1"), with UnifiedControllers set
	}{
		{
			name: "hybrid",
			mode: ModeHybrid,
			v1: map[string]Hierarchy{
				"cpu":          {"/sys/fs/cgroup/cpu", "/", "/"},
				"cpuacct":      {"/sys/fs/cgroup/cpuacct", "/", "/"},
				"cpuset":       {"/sys/fs/cgroup/cpuset", "/", "/"},
				"memory":       {"/sys/fs/cgroup/memory", "/", "/process_api/b4feb53779968599022ea671de27277e"},
				"devices":      {"/sys/fs/cgroup/devices", "/", "/"},
				"freezer":      {"/sys/fs/cgroup/freezer", "/", "/"},
				"blkio":        {"/sys/fs/cgroup/blkio", "/", "/"},
				"pids":         {"/sys/fs/cgroup/pids", "/", "/"},
				"name=systemd": {"/sys/fs/cgroup/systemd", "/", "/"},
			},
			unified: &Hierarchy{"/sys/fs/cgroup/unified", "/", "/"},
			paths: map[string]string{
				KeyMemory:  "/sys/fs/cgroup/memory/process_api/b4feb53779968599022ea671de27277e/t1",
				KeyCPU:     "/sys/fs/cgroup/cpu/t1",
				KeyCPUAcct: "/sys/fs/cgroup/cpuacct/t1",
				KeyPids:    "/sys/fs/cgroup/pids/t1",
				KeyCPUSet:  "/sys/fs/cgroup/cpuset/t1",
				KeyUnified: "/sys/fs/cgroup/unified/t1",
			},
		},
		{
			name:    "unified",
			mode:    ModeUnified,
			v1:      map[string]Hierarchy{},
			unified: &Hierarchy{"/sys/fs/cgroup", "/", "/system.slice/dcosd.service"},
			paths:   map[string]string{KeyUnified: "/sys/fs/cgroup/system.slice/dcosd.service/t1"},
		},
		{
			name: "v1",
			mode: ModeV1,
			v1: map[string]Hierarchy{
				"name=systemd": {"/sys/fs/cgroup/systemd", "/", "/system.slice/dcosd.service"},
				"cpu":          {"/sys/fs/cgroup/cpu,cpuacct", "/", "/system.slice/dcosd.service"},
				"cpuacct":      {"/sys/fs/cgroup/cpu,cpuacct", "/", "/system.slice/dcosd.service"},
				"memory":       {"/sys/fs/cgroup/memory", "/", "/system.slice/dcosd.service"},
				"pids":         {"/sys/fs/cgroup/pids", "/", "/system.slice/dcosd.service"},
				"freezer":      {"/sys/fs/cgroup/freezer", "/", "/"},
			},
			paths: map[string]string{
				KeyMemory:  "/sys/fs/cgroup/memory/system.slice/dcosd.service/t1",
				KeyCPU:     "/sys/fs/cgroup/cpu,cpuacct/system.slice/dcosd.service/t1",
				KeyCPUAcct: "/sys/fs/cgroup/cpu,cpuacct/system.slice/dcosd.service/t1",
				KeyPids:    "/sys/fs/cgroup/pids/system.slice/dcosd.service/t1",
			},
		},
		{
			name: "container",
			mode: ModeV1,
			v1: map[string]Hierarchy{
				"memory":  {"/sys/fs/cgroup/memory", "/kubepods/pod1/c1", "/kubepods/pod1/c1"},
				"cpu":     {"/sys/fs/cgroup/cpu,cpuacct", "/kubepods/pod1/c1", "/kubepods/pod1/c1"},
				"cpuacct": {"/sys/fs/cgroup/cpu,cpuacct", "/kubepods/pod1/c1", "/kubepods/pod1/c1"},
				"pids":    {"/sys/fs/cgroup/my pids", "/kubepods/pod1/c1", "/kubepods/pod1/c1/sub"},
			},
			paths: map[string]string{
				KeyMemory:  "/sys/fs/cgroup/memory/t1",
				KeyCPU:     "/sys/fs/cgroup/cpu,cpuacct/t1",
				KeyCPUAcct: "/sys/fs/cgroup/cpu,cpuacct/t1",
				KeyPids:    "/sys/fs/cgroup/my pids/sub/t1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := buildLayout(readTestdata(t, tt.name+".mountinfo"), readTestdata(t, tt.name+".cgroup"))
			if err != nil {
				t.Fatal(err)
			}
			if l.Mode != tt.mode {
				t.Errorf("mode = %v, want %v", l.Mode, tt.mode)
			}
			if !reflect.DeepEqual(l.V1, tt.v1) {
				t.Errorf("V1 = %+v\nwant %+v", l.V1, tt.v1)
			}
			if !reflect.DeepEqual(l.Unified, tt.unified) {
				t.Errorf("Unified = %+v, want %+v", l.Unified, tt.unified)
			}
			l.UnifiedControllers = []string{"cpu", "memory", "pids"}
			paths, err := l.taskPaths("", "t1")
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(paths, tt.paths) {
				t.Errorf("taskPaths = %v\nwant %v", paths, tt.paths)
			}
		})
	}
}

func TestLayout_taskPaths_parent(t *testing.T) {
	l, err := buildLayout(readTestdata(t, "hybrid.mountinfo"), readTestdata(t, "hybrid.cgroup"))
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.taskPaths("/dcos/tasks", "t1")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := p[KeyMemory], "/sys/fs/cgroup/memory/dcos/tasks/t1"; got != want {
		t.Errorf("memory = %q, want %q", got, want)
	}
	if got, want := p[KeyUnified], "/sys/fs/cgroup/unified/dcos/tasks/t1"; got != want {
		t.Errorf("unified = %q, want %q", got, want)
	}
	// A relative parent is beneath the process's own cgroup in each hierarchy.
	p, err = l.taskPaths("dcos", "t1")
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		KeyMemory:  "/sys/fs/cgroup/memory/process_api/b4feb53779968599022ea671de27277e/dcos/t1",
		KeyCPU:     "/sys/fs/cgroup/cpu/dcos/t1",
		KeyUnified: "/sys/fs/cgroup/unified/dcos/t1",
	} {
		if p[k] != want {
			t.Errorf("relative parent: %s = %q, want %q", k, p[k], want)
		}
	}
	for _, bad := range []string{"", ".", "..", "a/b", "a\x00"} {
		if _, err := l.taskPaths("", bad); !errors.Is(err, errBadName) {
			t.Errorf("taskPaths(%q) err = %v, want errBadName", bad, err)
		}
	}
}

func TestLayout_Check(t *testing.T) {
	tests := []struct {
		name, mountinfo, cgroup string
		controllers             []string
		missing                 string // controller named in the error, "" for none
	}{
		{"hybrid", "hybrid.mountinfo", "hybrid.cgroup", []string{"hugetlb"}, ""},
		{"unified", "unified.mountinfo", "unified.cgroup", []string{"cpuset", "cpu", "io", "memory", "pids"}, ""},
		{"unified without pids", "unified.mountinfo", "unified.cgroup", []string{"cpu", "memory"}, "pids"},
		{"v1 without pids", "v1.mountinfo", "", nil, "pids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cg := "1:name=systemd:/\n4:cpu,cpuacct:/\n11:memory:/\n"
			if tt.cgroup != "" {
				cg = readTestdata(t, tt.cgroup)
			}
			l, err := buildLayout(readTestdata(t, tt.mountinfo), cg)
			if err != nil {
				t.Fatal(err)
			}
			l.UnifiedControllers = tt.controllers
			err = l.Check()
			if tt.missing == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var nse *NotSupportedError
			if !errors.As(err, &nse) || nse.Controller != tt.missing || !errors.Is(err, ErrNotSupported) {
				t.Fatalf("Check() = %v, want NotSupportedError for %s", err, tt.missing)
			}
		})
	}
}

func TestBuildLayout_errors(t *testing.T) {
	tests := []struct{ name, mountinfo, cgroup string }{
		{"no cgroup mounts", "22 1 252:1 / / rw - ext4 /dev/vda1 rw\n", "0::/\n"},
		{"bad mountinfo", "garbage\n", "0::/\n"},
		{"bad cgroup", "", "nonsense\n"},
		{"relative path", "", "0::relative\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := buildLayout(tt.mountinfo, tt.cgroup); err == nil {
				t.Fatal("no error")
			}
		})
	}
}

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		`/a\040b`:  "/a b",
		`/a\011b`:  "/a\tb",
		`/a\\b`:    `/a\\b`,
		`/a\04`:    `/a\04`,
		`/plain`:   "/plain",
		`\134x`:    `\x`,
		`/x\999y`:  `/x\999y`,
		`/x\400yz`: `/x\400yz`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzBuildLayout(f *testing.F) {
	for _, n := range []string{"hybrid", "unified", "v1", "container"} {
		f.Add(readTestdata(f, n+".mountinfo"), readTestdata(f, n+".cgroup"), "/p", "t")
	}
	f.Fuzz(func(t *testing.T, mountinfo, cgroup, parent, name string) {
		l, err := buildLayout(mountinfo, cgroup)
		if err != nil {
			return
		}
		l.UnifiedControllers = requiredV2
		paths, err := l.taskPaths(parent, name)
		if err != nil {
			return
		}
		for k, p := range paths {
			if !strings.HasSuffix(p, "/"+name) {
				t.Errorf("%s path %q does not end in /%s", k, p, name)
			}
		}
	})
}

func FuzzParseProcCgroup(f *testing.F) {
	f.Add(readTestdata(f, "hybrid.cgroup"))
	f.Add(readTestdata(f, "v1.cgroup"))
	f.Add("0::/\n")
	f.Fuzz(func(t *testing.T, s string) {
		pc, err := parseProcCgroup(s)
		if err != nil {
			return
		}
		for c, p := range pc.V1 {
			if c == "" || !strings.HasPrefix(p, "/") {
				t.Errorf("bad entry %q:%q", c, p)
			}
		}
	})
}
