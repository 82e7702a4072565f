package kernel

import "time"

// WriteGate is an optional interface of a Store that can tell, before a
// commit is tried, that writes would be refused (a disk below its floor,
// etcd's NOSPACE alarm). Writable returns nil, or an error whose message
// names the cause and what frees it; it must be cheap (it is asked once
// per loop iteration) and safe for concurrent use.
type WriteGate interface {
	Writable() error
}

// maxRefusedGrace caps the grace given after writes resume (see gate).
const maxRefusedGrace = 5 * time.Minute

// gate asks the store whether writes may be tried now. While they may not,
// the loop applies nothing (persist, then apply: the table stays as it
// was), expires nothing and answers every queued call Unavailable with the
// store's reason; reads, Watch and heartbeats keep working. When writes
// resume, leases and agents get a grace as long as the refusal (at least
// a heartbeat timeout, at most five minutes) before they expire: nobody
// could renew while the kernel refused. It returns whether the loop may go
// on (nil); the loop only.
func (k *Kernel) gate(now time.Time) error {
	g, ok := k.cfg.Store.(WriteGate)
	if !ok {
		return nil
	}
	err := g.Writable()
	switch {
	case err != nil && k.refusedSince.IsZero():
		k.refusedSince = now
		k.log.Error("writes refused", "reason", err)
	case err == nil && !k.refusedSince.IsZero():
		grace := min(max(now.Sub(k.refusedSince), k.cfg.HeartbeatTimeout), maxRefusedGrace)
		k.expireAfter = now.Add(grace)
		k.log.Info("writes resumed", "refused_for", now.Sub(k.refusedSince).Round(time.Millisecond), "expiry_grace", grace.Round(time.Millisecond))
		k.refusedSince = time.Time{}
	}
	if err != nil {
		return errorf(Unavailable, "%v", err)
	}
	return nil
}
