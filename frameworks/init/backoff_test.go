package dinit

import (
	"testing"
	"time"
)

func TestBackoff_Delay(t *testing.T) {
	b := DefaultBackoff
	tests := []struct {
		failures int
		want     time.Duration
	}{
		{0, 0},
		{1, 0}, // the first failure is replaced at once
		{2, time.Second},
		{3, 1150 * time.Millisecond},
		{4, 1322500 * time.Microsecond},
		{1000, time.Hour},
	}
	for _, tt := range tests {
		if got := b.Delay(tt.failures); got.Round(time.Microsecond) != tt.want {
			t.Errorf("Delay(%d) = %s, want %s", tt.failures, got, tt.want)
		}
	}
	capped := Backoff{Seconds: 2, Factor: 2, MaxLaunchDelaySeconds: 10}
	if got := capped.Delay(5); got != 10*time.Second {
		t.Errorf("capped Delay(5) = %s, want 10s", got)
	}
}

func TestBackoff_Schedule(t *testing.T) {
	// 60 s of a command that exits at once, with Marathon's defaults:
	// launches at 0, 0, 1, 2.15, 3.4725, ... — 18 of them.
	got := DefaultBackoff.Schedule(time.Minute)
	if len(got) != 18 {
		t.Fatalf("launches in 60s = %d (%v), want 18", len(got), got)
	}
	for i := 2; i < len(got); i++ {
		if got[i]-got[i-1] <= got[i-1]-got[i-2] {
			t.Fatalf("gaps do not grow at %d: %v", i, got)
		}
	}
}
