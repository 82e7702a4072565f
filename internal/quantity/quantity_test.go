package quantity

import (
	"errors"
	"testing"
)

func TestParseBytes(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		err  bool
	}{
		{"64Mi", 64 << 20, false},
		{"1.5Gi", 3 << 29, false},
		{"512M", 512e6, false},
		{"1000", 1000, false},
		{"0", 0, false},
		{"", 0, true},
		{"-1Mi", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"10Xi", 0, true},
		{"99999999Pi", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseBytes(tt.in)
			if (err != nil) != tt.err {
				t.Fatalf("ParseBytes(%q) err = %v, want err %v", tt.in, err, tt.err)
			}
			if err != nil && !errors.Is(err, ErrSyntax) {
				t.Fatalf("error %v does not wrap ErrSyntax", err)
			}
			if got != tt.want {
				t.Fatalf("ParseBytes(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestFormatBytes(t *testing.T) {
	for in, want := range map[int64]string{64 << 20: "64Mi", 3 << 29: "1.5Gi", 1000: "1000", 0: "0"} {
		if got := FormatBytes(in); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", in, got, want)
		}
	}
}

func TestParseResources(t *testing.T) {
	r, err := ParseResources("cpus=9, mem=18Gi,disk=100Gi")
	if err != nil {
		t.Fatal(err)
	}
	if *r.CPUs != 9 || *r.MemBytes != 18<<30 || *r.DiskBytes != 100<<30 {
		t.Fatalf("got %v %v %v", *r.CPUs, *r.MemBytes, *r.DiskBytes)
	}
	r, err = ParseResources("mem=1Gi")
	if err != nil || r.CPUs != nil || r.DiskBytes != nil || *r.MemBytes != 1<<30 {
		t.Fatalf("subset: %+v %v", r, err)
	}
	for _, bad := range []string{"cpus", "cpus=-1", "cpus=NaN", "gpus=1", "mem=1Gi,mem=2Gi", "mem=lots"} {
		if _, err := ParseResources(bad); err == nil {
			t.Errorf("ParseResources(%q): want error", bad)
		}
	}
}
