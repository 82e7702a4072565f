package agent

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dcos-kernel/dcos/agent/internal/hostos"
)

func TestAgent_New(t *testing.T) {
	t.Parallel()
	mem, err := hostos.MemTotal()
	if err != nil {
		t.Fatal(err)
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	const gi = int64(1) << 30
	tests := []struct {
		name    string
		cfg     Config
		cpus    float64 // 0: measured
		mem     int64   // 0: measured
		disk    int64   // 0: measured (> 0)
		wantErr string
	}{
		{name: "measured", cfg: Config{KernelURL: "http://k"}},
		{name: "all overridden", cfg: Config{KernelURL: "http://k", Resources: "cpus=9,mem=18Gi,disk=100Gi"},
			cpus: 9, mem: 18 * gi, disk: 100 * gi},
		{name: "mem overridden", cfg: Config{KernelURL: "http://k", Resources: "mem=1Gi"}, mem: gi},
		{name: "fractional cpus", cfg: Config{KernelURL: "http://k", Resources: "cpus=0.5"}, cpus: 0.5},
		{name: "bad resources", cfg: Config{KernelURL: "http://k", Resources: "cpus=many"}, wantErr: "Resources"},
		{name: "unknown resource", cfg: Config{KernelURL: "http://k", Resources: "gpus=1"}, wantErr: "Resources"},
		{name: "no kernel", cfg: Config{}, wantErr: "KernelURL or Client"},
		{name: "negative grace", cfg: Config{KernelURL: "http://k", KillGrace: -time.Second}, wantErr: "KillGrace"},
		{name: "no data dir", cfg: Config{KernelURL: "http://k"}, wantErr: "DataDir"},
		{name: "no plugins", cfg: Config{KernelURL: "http://k"}, wantErr: "Plugins"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := tt.cfg
			if tt.name != "no data dir" {
				cfg.DataDir = filepath.Join(t.TempDir(), "data")
			}
			if tt.name != "no plugins" {
				cfg.Plugins = &testPlugins{}
			}
			a, err := New(cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("New: err = %v, want one mentioning %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			for _, d := range []string{"", "sandboxes", "tasks"} {
				if fi, err := os.Stat(filepath.Join(cfg.DataDir, d)); err != nil || !fi.IsDir() {
					t.Errorf("data dir %q: %v", d, err)
				}
			}
			r := a.node.resources
			want := tt.cpus
			if want == 0 {
				want = float64(runtime.NumCPU())
			}
			if r.GetCpus() != want {
				t.Errorf("cpus = %v, want %v", r.GetCpus(), want)
			}
			wantMem := tt.mem
			if wantMem == 0 {
				wantMem = mem
			}
			if r.GetMemBytes() != wantMem {
				t.Errorf("mem = %d, want %d", r.GetMemBytes(), wantMem)
			}
			if tt.disk != 0 && r.GetDiskBytes() != tt.disk || r.GetDiskBytes() <= 0 {
				t.Errorf("disk = %d, want %d (0: measured, > 0)", r.GetDiskBytes(), tt.disk)
			}
			if a.node.hostname != host {
				t.Errorf("hostname = %q, want %q", a.node.hostname, host)
			}
			if a.ID() != "" {
				t.Errorf("ID() before Run = %q, want empty", a.ID())
			}
		})
	}
}

func TestAgent_RunLocksDataDir(t *testing.T) {
	t.Parallel()
	k, url := startFakeKernel(t)
	a := startAgent(t, k, url, "")
	b, err := New(Config{KernelURL: url, DataDir: a.dataDir, Plugins: &testPlugins{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Run(t.Context()); err == nil || !strings.Contains(err.Error(), "locked") {
		t.Errorf("second agent on one data dir: Run = %v, want a lock error", err)
	}
}
