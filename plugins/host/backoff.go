package host

import "time"

// backoff is the restart delay of one plugin: it starts at min, doubles after
// each restart that did not stay up for stableAfter, and is capped at max.
// It is a pure function of what happened, so it is tested without clocks.
type backoff struct {
	min, max, cur time.Duration
}

func newBackoff(min, max time.Duration) backoff { return backoff{min: min, max: max} }

// next returns the delay before the next start, given how long the last
// instance stayed up (0 if it failed to start).
func (b *backoff) next(upFor time.Duration) time.Duration {
	switch {
	case upFor >= stableAfter || b.cur == 0:
		b.cur = b.min
	case b.cur > b.max/2:
		b.cur = b.max
	default:
		b.cur = 2 * b.cur
	}
	return b.cur
}
