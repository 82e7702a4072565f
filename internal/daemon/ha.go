package daemon

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/store"
	"github.com/dcos-kernel/dcos/kernel"
	"github.com/dcos-kernel/dcos/sdk/transport"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// leadership runs a kernel process's terms: it campaigns in the kernel
// election, and each time it wins it loads a kernel from the store (its
// commits fenced on the election key), serves it through the Switch, and
// runs it until the lead ends — its lease lost, a commit fenced, or the
// process stopping (then it resigns, so that a standby takes over at
// once). Meanwhile, as a standby, it watches the leader: the moment the
// leader's /leader/alive stream breaks and its port refuses connections,
// its process is gone, and the standby deposes it (revokes its lease)
// rather than wait for the lease to expire. Fencing makes that safe even
// when the standby is wrong (docs/operations.md). From the moment it
// sees another kernel lead until it leads itself, it keeps the durable
// state warm (store.Follower), so that its kernel loads without reading
// the whole state from etcd.
type leadership struct {
	st    *store.Etcd // unfenced: reads, election
	self  string      // this kernel's advertised URL
	ttl   time.Duration
	log   *slog.Logger
	sw    *api.Switch
	start func(ctx context.Context, st *store.Etcd) (*kernel.Kernel, http.Handler, error)
	alive *http.Client // probeAlive's: TLS as this kernel (aliveClient)

	mu     sync.Mutex
	leader string // the leader's URL as last seen ("" during an election)
	why    error  // why nobody leads, when the store said (or failed to)
	led    chan struct{}
	once   sync.Once

	runCtx context.Context // run's; the follower's lifetime is bounded by it
	warm   *store.Follower // while standing by behind another kernel, else nil
}

func newLeadership(st *store.Etcd, self string, ttl time.Duration, log *slog.Logger) *leadership {
	return &leadership{st: st, self: self, ttl: ttl, log: log, led: make(chan struct{})}
}

// Leader is the leader's URL as this process knows it, or "" and why
// nobody leads (nil: an election is under way).
func (l *leadership) Leader() (string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.leader, l.why
}

func (l *leadership) setLeader(u string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leader, l.why = u, nil
}

// storeFailed records that the store could not be asked who leads.
func (l *leadership) storeFailed(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.leader = ""
	l.why = fmt.Errorf("the store (etcd) is unreachable or has lost quorum: %w", err)
}

// Led is closed once this process has led (dcosd dev waits for it).
func (l *leadership) Led() <-chan struct{} { return l.led }

// run campaigns and serves terms until ctx ends.
func (l *leadership) run(ctx context.Context) error {
	l.mu.Lock()
	l.runCtx = ctx
	l.mu.Unlock()
	defer l.stopWarm()
	for ctx.Err() == nil {
		if err := l.term(ctx); err != nil && ctx.Err() == nil {
			l.log.Error("kernel term ended", "err", err)
			sleepCtx(ctx, 500*time.Millisecond)
		}
	}
	return nil
}

func (l *leadership) term(ctx context.Context) error {
	cctx, cancelC := context.WithTimeout(ctx, l.ttl)
	c, err := l.st.Candidate(cctx, l.self, l.ttl)
	cancelC()
	if err != nil {
		l.storeFailed(err)
		return err
	}
	defer c.Close()
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		l.watchLeader(wctx)
	}()
	// A standby's lease can lapse too (its etcd connection was to a
	// member that died): its keys are gone with it, so it must start a
	// new candidacy rather than wait in line with none.
	campCtx, stopCamp := context.WithCancel(ctx)
	go func() {
		select {
		case <-c.Done():
			stopCamp()
		case <-campCtx.Done():
		}
	}()
	err = c.Campaign(campCtx)
	lapsed := campCtx.Err() != nil && ctx.Err() == nil
	stopCamp()
	stopWatch()
	<-watched
	if lapsed {
		return errors.New("this kernel's election lease lapsed while it stood by; campaigning again")
	}
	if err != nil {
		return err
	}
	l.setLeader(l.self)
	tctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var leaseLost atomic.Bool
	go func() {
		select {
		case <-c.Done():
			l.log.Warn("kernel election lease lost; stepping down")
			leaseLost.Store(true)
			cancel()
		case <-tctx.Done():
		}
	}()
	began := time.Now()
	fenced := l.st.Fenced(c.Key(), c.Rev())
	l.mu.Lock()
	warm := l.warm
	l.mu.Unlock()
	if warm != nil {
		fenced.WithFollower(warm)
	}
	k, h, err := l.start(tctx, fenced)
	if err != nil {
		l.stopWarm()
		return err
	}
	l.sw.SetLeader(h)
	l.once.Do(func() { close(l.led) })
	l.log.Info("kernel leads", "url", l.self, "took", time.Since(began).Round(time.Millisecond), "revision", k.Revision(), "warm", warm != nil)
	// The leader is the one writer: it needs no follower, which would
	// decode each of its commits again (its reloads read the whole
	// state). The next standby period starts one. Its goroutine ends
	// while the kernel runs.
	if f := l.detachWarm(); f != nil {
		go f.Stop()
	}
	err = k.Run(tctx)
	l.sw.SetStandby()
	if leaseLost.Load() {
		// Until the store answers again (watchLeader, the next
		// candidacy), say why rather than "an election is under way".
		l.mu.Lock()
		l.leader = ""
		l.why = errors.New("this kernel's election lease expired before etcd renewed it (it was cut off from etcd, paused, or etcd lost quorum); it is looking for the new leader")
		l.mu.Unlock()
	} else {
		l.setLeader("")
	}
	if errors.Is(err, kernel.ErrFenced) {
		l.log.Warn("kernel deposed: another kernel leads", "err", err)
		return nil
	}
	return err
}

// watchLeader follows the election while this process stands by: it
// keeps the leader's URL for the standby's answers and deposes a leader
// whose process is gone.
func (l *leadership) watchLeader(ctx context.Context) {
	for ctx.Err() == nil {
		gctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		li, ok, err := l.st.Leader(gctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			l.storeFailed(err)
		}
		if err != nil || !ok {
			if err == nil {
				l.setLeader("")
			}
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		l.setLeader(li.URL)
		if li.URL == l.self {
			sleepCtx(ctx, 100*time.Millisecond)
			continue
		}
		l.startWarm()
		began := time.Now()
		broke := probeAlive(ctx, l.alive, li.URL)
		if ctx.Err() != nil {
			return
		}
		if broke && refuses(li.URL) {
			ok, err := l.st.Depose(ctx, li)
			l.log.Warn("the leading kernel's process is gone (its port refuses connections); deposed it", "leader", li.URL, "revoked", ok, "err", err)
			continue
		}
		if time.Since(began) < time.Second {
			sleepCtx(ctx, 200*time.Millisecond) // not serving the probe yet, or not leading any more
		}
	}
}

// startWarm starts the follower that keeps the state warm, unless it
// runs. It is started once another kernel is seen leading, not at
// process start: a kernel that wins at once (a lone one, the first of a
// cluster) would read the whole state twice, and a leader needs none.
func (l *leadership) startWarm() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.warm == nil && l.runCtx != nil && l.runCtx.Err() == nil {
		l.warm = l.st.Follow(l.runCtx, l.log)
	}
}

// stopWarm stops the follower, if it runs, and waits for it.
func (l *leadership) stopWarm() {
	if f := l.detachWarm(); f != nil {
		f.Stop()
	}
}

// detachWarm returns the follower, if it runs, and forgets it: the next
// startWarm starts another.
func (l *leadership) detachWarm() *store.Follower {
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.warm
	l.warm = nil
	return f
}

// probeAlive holds GET leader/alive open until it ends; it reports
// whether it ended in a broken connection (rather than an answer that
// the kernel does not lead, or ctx's end).
func probeAlive(ctx context.Context, client *http.Client, leader string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, leader+"/leader/alive", nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return ctx.Err() == nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	r := bufio.NewReader(resp.Body)
	for {
		if _, err := r.ReadString('\n'); err != nil {
			return ctx.Err() == nil
		}
	}
}

// aliveClient is the client of probeAlive: TLS with the kernel's own
// certificate and the cluster's bundle (tlsConf).
func aliveClient(tlsConf *tls.Config) *http.Client {
	t := &http.Transport{
		DialContext:       (&net.Dialer{Timeout: 2 * time.Second, KeepAlive: 5 * time.Second}).DialContext,
		DisableKeepAlives: true,
	}
	// A copy (a Transport sets NextProtos in place), verified by
	// crypto/tls for the kernel's address (transport.FollowTrust).
	transport.SetTLS(t, tlsConf)
	return &http.Client{Transport: t}
}

// refuses reports whether a TCP connection to the kernel at u is refused
// outright (nothing listens there any more), as opposed to a timeout (a
// partition: then the lease decides).
func refuses(u string) bool {
	pu, err := url.Parse(u)
	if err != nil {
		return false
	}
	conn, err := net.DialTimeout("tcp", pu.Host, time.Second)
	if err == nil {
		conn.Close()
		return false
	}
	return errors.Is(err, syscall.ECONNREFUSED)
}

// clusterInfo answers ClusterInfo from the store's member list.
func (l *leadership) clusterInfo(ctx context.Context) (*pb.ClusterInfoResponse, error) {
	ms, err := l.st.Members(ctx)
	if err != nil {
		return nil, err
	}
	li, ok, err := l.st.Leader(ctx)
	if err != nil {
		return nil, err
	}
	resp := &pb.ClusterInfoResponse{}
	if ok {
		resp.Leader = li.URL
	}
	for _, m := range ms {
		resp.Kernels = append(resp.Kernels, &pb.KernelInfo{Url: m.URL, Leader: ok && m.URL == li.URL, Since: timestamppb.New(m.Since)})
	}
	return resp, nil
}

// advertiseURL is the URL other kernels and clients reach this kernel
// at: --advertise-url, else the listen address (with the host name when
// it listens on every address).
func advertiseURL(flag string, ln net.Addr) (string, error) {
	if flag != "" {
		u, err := url.Parse(flag)
		if err == nil && u.Scheme == "http" && u.Host != "" {
			// Kernels serve only TLS: a plain URL would send every
			// client to a port that answers 400.
			return "", fmt.Errorf("--advertise-url %q: the kernel API serves TLS only; use https://%s", flag, u.Host)
		}
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return "", fmt.Errorf("--advertise-url %q: want https://HOST:PORT", flag)
		}
		return "https://" + u.Host, nil
	}
	ta, ok := ln.(*net.TCPAddr)
	if !ok {
		return "https://" + ln.String(), nil
	}
	if ta.IP.IsUnspecified() {
		h, err := os.Hostname()
		if err != nil {
			return "", fmt.Errorf("advertise url: %w (pass --advertise-url)", err)
		}
		return fmt.Sprintf("https://%s", net.JoinHostPort(h, fmt.Sprint(ta.Port))), nil
	}
	return "https://" + ta.String(), nil
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}
