package quota_test

import (
	"testing"

	"github.com/dcos-kernel/dcos/plugins/policies/internal/quota"
	"github.com/dcos-kernel/dcos/sdk/policy"
)

func TestUsage_Fits(t *testing.T) {
	b := &policy.Batch{Roles: []policy.Role{
		{Name: "open", Usage: policy.Resources{MilliCPU: 9000}},
		{Name: "cpu", Usage: policy.Resources{MilliCPU: 1000, Mem: 1 << 40}, Quota: policy.Resources{MilliCPU: 2000}},
		{Name: "ports", Quota: policy.Resources{Ports: 1}},
		{Name: "lowered", Usage: policy.Resources{Disk: 5}, Quota: policy.Resources{Disk: 4}},
	}}
	cpu := func(m int64) policy.Resources { return policy.Resources{MilliCPU: m} }
	tests := []struct {
		name string
		role uint32
		take []policy.Resources // placed before asking
		need policy.Resources
		want bool
	}{
		{"no quota", 0, nil, cpu(1 << 40), true},
		{"no role", policy.NoRole, nil, cpu(1 << 40), true},
		{"up to the quota", 1, nil, cpu(1000), true},
		{"past the quota", 1, nil, cpu(1001), false},
		{"placements count", 1, []policy.Resources{cpu(600)}, cpu(500), false},
		{"a dimension left at zero is not capped", 1, nil, policy.Resources{Mem: 1 << 40}, true},
		{"ports", 2, []policy.Resources{{Ports: 1}}, policy.Resources{Ports: 1}, false},
		{"no port asked at a ports quota", 2, []policy.Resources{{Ports: 1}}, cpu(100), true},
		{"past a lowered quota nothing fits", 3, nil, cpu(1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := quota.New(b)
			for _, r := range tt.take {
				u.Take(tt.role, r)
			}
			if got := u.Fits(tt.role, tt.need); got != tt.want {
				t.Errorf("Fits(%d, %v) = %v, want %v", tt.role, tt.need, got, tt.want)
			}
		})
	}
}

func TestUsage_NoQuotaAllocatesNothing(t *testing.T) {
	b := &policy.Batch{Roles: []policy.Role{{Name: "a"}, {Name: "b"}}}
	if n := testing.AllocsPerRun(100, func() {
		u := quota.New(b)
		u.Take(0, policy.Resources{MilliCPU: 1})
		_ = u.Fits(1, policy.Resources{MilliCPU: 1})
	}); n != 0 {
		t.Errorf("%v allocations without a quota, want 0", n)
	}
}
