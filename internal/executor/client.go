package executor

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"sync"
	"time"

	"github.com/dcos-kernel/dcos/internal/executor/wire"
)

// errConnLost is returned by calls on a connection that broke.
var errConnLost = errors.New("connection to supervisor lost")

// replyError is a failure the supervisor reported.
type replyError struct {
	code, msg string
}

func (e *replyError) Error() string { return e.msg }

// client is one connection to the supervisor. Replies are matched to calls
// by request id; events go to onEvent, in the order they arrive, on the
// reader goroutine. onLost runs once, on the reader goroutine, when the
// connection breaks (not after close).
type client struct {
	conn *net.UnixConn

	wmu sync.Mutex // serializes writes

	mu      sync.Mutex
	pid     int // the supervisor's, once it said hello
	next    uint64
	pending map[uint64]chan *wire.Reply
	closed  bool
	lost    chan struct{} // closed when the reader stops
}

// dial connects to the supervisor at sock and says hello.
func dial(ctx context.Context, sock string, onEvent func(*wire.Reply), onLost func(*client)) (*client, error) {
	addr, done, err := wire.SocketAddr(filepath.Dir(sock)) // a long state dir: through its descriptor
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", addr)
	done()
	if err != nil {
		return nil, err
	}
	cl := &client{conn: c.(*net.UnixConn), pending: map[uint64]chan *wire.Reply{}, lost: make(chan struct{})}
	go cl.read(onEvent, onLost)
	hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	r, err := cl.call(hctx, &wire.Request{Op: wire.OpHello})
	if err != nil {
		cl.close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	cl.mu.Lock()
	cl.pid = r.Pid
	cl.mu.Unlock()
	return cl, nil
}

func (cl *client) read(onEvent func(*wire.Reply), onLost func(*client)) {
	sc := bufio.NewScanner(cl.conn)
	sc.Buffer(make([]byte, 0, 4096), wire.MaxMessage+1)
	for sc.Scan() {
		r, err := wire.DecodeReply(sc.Bytes())
		if err != nil {
			break // a supervisor we cannot understand: drop it
		}
		if r.ID == 0 {
			onEvent(r)
			continue
		}
		cl.mu.Lock()
		ch := cl.pending[r.ID]
		delete(cl.pending, r.ID)
		cl.mu.Unlock()
		if ch != nil {
			ch <- r
		}
	}
	cl.mu.Lock()
	closed := cl.closed
	cl.closed = true
	cl.mu.Unlock()
	cl.conn.Close()
	close(cl.lost)
	if !closed {
		onLost(cl)
	}
}

// call sends req (its ID is set here) and waits for the reply. A failure
// the supervisor reports is a *replyError.
func (cl *client) call(ctx context.Context, req *wire.Request) (*wire.Reply, error) {
	ch := make(chan *wire.Reply, 1)
	cl.mu.Lock()
	if cl.closed {
		cl.mu.Unlock()
		return nil, errConnLost
	}
	cl.next++
	req.ID = cl.next
	cl.pending[req.ID] = ch
	cl.mu.Unlock()
	defer func() {
		cl.mu.Lock()
		delete(cl.pending, req.ID)
		cl.mu.Unlock()
	}()
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	b = append(b, '\n')
	cl.wmu.Lock()
	cl.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err = cl.conn.Write(b)
	cl.wmu.Unlock()
	if err != nil {
		cl.conn.Close() // the reader sees it and reports the loss
		return nil, fmt.Errorf("%w: %v", errConnLost, err)
	}
	select {
	case r := <-ch:
		if r.Err != "" {
			return nil, &replyError{code: r.Code, msg: r.Err}
		}
		return r, nil
	case <-cl.lost:
		return nil, errConnLost
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// alive reports whether the connection still works.
func (cl *client) alive() bool {
	select {
	case <-cl.lost:
		return false
	default:
		return true
	}
}

// close drops the connection without reporting it lost.
func (cl *client) close() {
	cl.mu.Lock()
	cl.closed = true
	cl.mu.Unlock()
	cl.conn.Close()
}

// supervisorPid returns the supervisor's pid, 0 before its hello.
func (cl *client) supervisorPid() int {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	return cl.pid
}
