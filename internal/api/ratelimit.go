package api

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"golang.org/x/time/rate"

	"github.com/dcos-kernel/dcos/kernel"
)

// RateLimit is the syscall rate allowed to each principal of a role: a
// token bucket that refills at Rate calls per second and holds up to Burst
// calls. A zero Rate means unlimited.
type RateLimit struct {
	Rate  float64
	Burst int
}

// Unlimited reports whether l places no limit.
func (l RateLimit) Unlimited() bool { return l.Rate <= 0 || math.IsInf(l.Rate, 1) }

// String formats l as ParseRateLimit reads it (without the role).
func (l RateLimit) String() string {
	if l.Unlimited() {
		return "unlimited"
	}
	return strconv.FormatFloat(l.Rate, 'f', -1, 64) + ",burst=" + strconv.Itoa(l.Burst)
}

// DefaultRateLimits returns the rate limits per role when none is
// configured: operators are not limited; each framework may make 200
// calls/s with bursts of 400; each agent principal 2000 calls/s with bursts
// of 4000 (agents that share one token share one bucket: a heartbeat a
// second each, plus their reports); each agent join token 50 calls/s with
// bursts of 200 (one AgentJoin per new agent: a leaked join token mints
// agent tokens no faster).
func DefaultRateLimits() map[kernel.Role]RateLimit {
	return map[kernel.Role]RateLimit{
		kernel.RoleOperator:  {},
		kernel.RoleFramework: {Rate: 200, Burst: 400},
		kernel.RoleAgent:     {Rate: 2000, Burst: 4000},
		kernel.RoleAgentJoin: {Rate: 50, Burst: 200},
	}
}

// ParseRateLimit reads ROLE=RATE[,burst=N] (RATE in calls per second;
// burst defaults to twice the rate) or ROLE=unlimited, e.g.
// "framework=200,burst=400". A principal-specific limit
// (ROLE:NAME=...) is an error here; see ParsePrincipalRateLimit.
func ParseRateLimit(s string) (kernel.Role, RateLimit, error) {
	p, l, err := ParsePrincipalRateLimit(s)
	if err == nil && p.Name != "" {
		return 0, RateLimit{}, fmt.Errorf("rate limit %q: a limit of one principal is not a role's", s)
	}
	return p.Role, l, err
}

// ParsePrincipalRateLimit reads what ParseRateLimit reads, and also
// ROLE:NAME=RATE[,burst=N] or ROLE:NAME=unlimited, the limit of the one
// principal NAME of ROLE (e.g. "framework:init=unlimited"), which
// overrides its role's. The returned principal's Name is empty for a
// role's limit.
func ParsePrincipalRateLimit(s string) (kernel.Principal, RateLimit, error) {
	bad := func(why string) (kernel.Principal, RateLimit, error) {
		return kernel.Principal{}, RateLimit{}, fmt.Errorf("rate limit %q: %s (want ROLE[:NAME]=RATE[,burst=N] or ROLE[:NAME]=unlimited)", s, why)
	}
	who, spec, ok := strings.Cut(s, "=")
	name, principal, named := strings.Cut(who, ":")
	role, known := kernel.ParseRole(name)
	p := kernel.Principal{Role: role, Name: principal}
	switch {
	case !ok:
		return bad("no =")
	case !known:
		return bad("role must be operator, framework, agent or agent-join")
	case named && principal == "":
		return bad("empty principal name after ':'")
	case spec == "unlimited":
		return p, RateLimit{}, nil
	}
	rs, bs, hasBurst := strings.Cut(spec, ",")
	r, err := strconv.ParseFloat(rs, 64)
	if err != nil || !(r > 0) || math.IsInf(r, 0) {
		return bad("rate must be a positive number of calls per second")
	}
	l := RateLimit{Rate: r, Burst: int(math.Max(1, math.Ceil(2*r)))}
	if hasBurst {
		v, ok := strings.CutPrefix(bs, "burst=")
		b, err := strconv.Atoi(v)
		if !ok || err != nil || b < 1 {
			return bad("burst must be burst=N with N ≥ 1")
		}
		l.Burst = b
	}
	return p, l, nil
}

// rateLimiter holds one token bucket per principal. It is safe for
// concurrent use; a call costs a map load and the bucket's mutex.
type rateLimiter struct {
	limits  map[kernel.Role]RateLimit
	own     map[kernel.Principal]RateLimit // overrides of one principal
	buckets sync.Map                       // kernel.Principal → *rate.Limiter
}

func newRateLimiter(limits map[kernel.Role]RateLimit, own map[kernel.Principal]RateLimit) *rateLimiter {
	if limits == nil {
		limits = DefaultRateLimits()
	}
	return &rateLimiter{limits: limits, own: own}
}

// allow takes one call from p's bucket at now, or returns a
// ResourceExhausted error that names the limit and when to retry.
func (l *rateLimiter) allow(p kernel.Principal, now time.Time) error {
	lim, ok := l.own[p]
	if !ok {
		lim = l.limits[p.Role]
	}
	if lim.Unlimited() {
		return nil
	}
	b, ok := l.buckets.Load(p)
	if !ok {
		b, _ = l.buckets.LoadOrStore(p, rate.NewLimiter(rate.Limit(lim.Rate), lim.Burst))
	}
	res := b.(*rate.Limiter).ReserveN(now, 1)
	d := res.DelayFrom(now)
	if d == 0 {
		return nil
	}
	res.CancelAt(now)
	retry := max(d.Round(time.Millisecond), time.Millisecond)
	return connect.NewError(connect.CodeResourceExhausted, fmt.Errorf(
		"rate limit: %s %s exceeded %s calls/s (burst %d); retry after %v",
		p.Role, p.Name, strconv.FormatFloat(lim.Rate, 'f', -1, 64), lim.Burst, retry))
}
