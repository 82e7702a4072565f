package dinit

import (
	"math"
	"time"
)

// BackoffReset is how long an instance must have run (RUNNING and not
// UNHEALTHY) before its next failure counts as the first again.
const BackoffReset = 5 * time.Minute

// Delay is the restart delay after the given number of consecutive
// failures: none after the first (an instance that had been running is
// replaced at once, as the kubelet restarts a container the first time),
// then seconds × factor^(failures-2), capped at maxLaunchDelaySeconds: a
// crash loop waits 1s, 1.15s, 1.32s, ... with Marathon's defaults.
func (b Backoff) Delay(failures int) time.Duration {
	if failures <= 1 {
		return 0
	}
	d := b.Seconds * math.Pow(b.Factor, float64(failures-2))
	if d > b.MaxLaunchDelaySeconds || math.IsInf(d, 0) || math.IsNaN(d) {
		d = b.MaxLaunchDelaySeconds
	}
	return time.Duration(d * float64(time.Second))
}

// Schedule is the launch times of a command that fails at once, in the
// first window after start (the first launch at 0): what the crash-loop
// check of the issue compares launches with.
func (b Backoff) Schedule(window time.Duration) []time.Duration {
	var out []time.Duration
	var t time.Duration
	for i := 0; t <= window; i++ {
		out = append(out, t)
		t += b.Delay(i + 1)
	}
	return out
}
