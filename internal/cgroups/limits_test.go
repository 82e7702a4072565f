package cgroups

import (
	"reflect"
	"testing"
)

func TestLimits_cpu(t *testing.T) {
	tests := []struct {
		milli                 int64
		quota, shares, weight int64
		max                   string
	}{
		{0, -1, 1024, 39, "max 100000"},
		{1, 1000, 2, 1, "1000 100000"},
		{500, 50000, 512, 20, "50000 100000"},
		{1000, 100000, 1024, 39, "100000 100000"},
		{2500, 250000, 2560, 98, "250000 100000"},
		{1 << 40, (1 << 40) * 100, 262144, 10000, "109951162777600 100000"},
	}
	for _, tt := range tests {
		if q := cfsQuota(tt.milli); q != tt.quota {
			t.Errorf("cfsQuota(%d) = %d, want %d", tt.milli, q, tt.quota)
		}
		if s := cpuShares(tt.milli); s != tt.shares {
			t.Errorf("cpuShares(%d) = %d, want %d", tt.milli, s, tt.shares)
		}
		if w := cpuWeight(tt.milli); w != tt.weight {
			t.Errorf("cpuWeight(%d) = %d, want %d", tt.milli, w, tt.weight)
		}
		if m := cpuMax(tt.milli); m != tt.max {
			t.Errorf("cpuMax(%d) = %q, want %q", tt.milli, m, tt.max)
		}
	}
}

func TestLimits_Validate(t *testing.T) {
	if err := (Limits{MemoryBytes: 1, MilliCPU: 1, Pids: 1}).Validate(); err != nil {
		t.Error(err)
	}
	for _, l := range []Limits{{MemoryBytes: -1}, {MilliCPU: -1}, {Pids: -1}} {
		if l.Validate() == nil {
			t.Errorf("%+v: no error", l)
		}
	}
}

func TestParseKeyed(t *testing.T) {
	oom := "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"
	if n, ok := parseKeyed(oom, "oom_kill"); !ok || n != 3 {
		t.Errorf("oom_kill = %d, %v", n, ok)
	}
	if _, ok := parseKeyed(oom, "oom"); ok {
		t.Error("found prefix key")
	}
	if n, ok := parseKeyed("usage_usec 1234\nuser_usec 1000\n", "usage_usec"); !ok || n != 1234 {
		t.Errorf("usage_usec = %d, %v", n, ok)
	}
}

func TestParsePids(t *testing.T) {
	got, err := parsePids("12\n345\n")
	if err != nil || !reflect.DeepEqual(got, []int{12, 345}) {
		t.Errorf("parsePids = %v, %v", got, err)
	}
	if _, err := parsePids("12\nx\n"); err == nil {
		t.Error("no error for bad pid")
	}
}

func TestSplitTicks(t *testing.T) {
	tests := []struct {
		name         string
		total        uint64
		stat         string
		user, system uint64
	}{
		{"proportional", 3000, "user 2\nsystem 1\n", 2000, 1000},
		{"all user", 3000, "user 5\nsystem 0\n", 3000, 0},
		{"no ticks yet", 3000, "user 0\nsystem 0\n", 0, 0},
		{"malformed", 3000, "nonsense", 0, 0},
		{"rounding keeps the sum", 1000, "user 1\nsystem 2\n", 333, 667},
		{"huge", 1 << 62, "user 1000000\nsystem 1000000\n", 1 << 61, 1 << 61},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, s := splitTicks(tt.total, tt.stat)
			if u != tt.user || s != tt.system {
				t.Errorf("splitTicks(%d, %q) = %d, %d; want %d, %d", tt.total, tt.stat, u, s, tt.user, tt.system)
			}
		})
	}
}
