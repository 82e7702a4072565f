package host

import (
	"testing"
	"time"
)

func TestBackoff_Next(t *testing.T) {
	const ms = time.Millisecond
	tests := []struct {
		name   string
		min    time.Duration
		max    time.Duration
		upFors []time.Duration // how long each instance stayed up
		want   []time.Duration
	}{
		{"doubles to the cap", 200 * ms, time.Second, []time.Duration{0, 0, 0, 0, 0, 0}, []time.Duration{200 * ms, 400 * ms, 800 * ms, time.Second, time.Second, time.Second}},
		{"short runs do not reset", 200 * ms, time.Second, []time.Duration{0, 10 * time.Second, 59 * time.Second}, []time.Duration{200 * ms, 400 * ms, 800 * ms}},
		{"a stable run resets", 200 * ms, time.Second, []time.Duration{0, 0, stableAfter, 0}, []time.Duration{200 * ms, 400 * ms, 200 * ms, 400 * ms}},
		{"min equals max", time.Second, time.Second, []time.Duration{0, 0}, []time.Duration{time.Second, time.Second}},
		{"huge max does not overflow", time.Hour, 1<<63 - 1, []time.Duration{0, 0, 0}, []time.Duration{time.Hour, 2 * time.Hour, 4 * time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackoff(tt.min, tt.max)
			for i, up := range tt.upFors {
				if got := b.next(up); got != tt.want[i] {
					t.Errorf("next #%d (up %s) = %s, want %s", i, up, got, tt.want[i])
				}
			}
		})
	}
}
