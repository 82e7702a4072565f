package e2e

import (
	"bytes"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestTLS_NothingInClearOnTheWire captures the loopback traffic of a
// dcosd dev's API port while dcosctl and a watching client run a session
// with a task whose environment and command carry marker strings, and
// finds none of the session's secrets in it: not the operator token, not
// the task's environment, not an event's payload. The control — a plain
// HTTP request with a marker header, which the port refuses — is found,
// so the capture does see clear text on that port.
func TestTLS_NothingInClearOnTheWire(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startDev("--init=false", "--jobs=false")
	u, err := url.Parse(e.url)
	if err != nil {
		t.Fatal(err)
	}
	port, _ := strconv.Atoi(u.Port())
	capture := captureLoopback(t, port)

	envValue := "env-marker-" + newToken()[:16]
	argMarker := "arg-marker-" + newToken()[:16]
	op := e.op()
	list, err := op.ListAgents(ctx(t), connect.NewRequest(&pb.ListAgentsRequest{}))
	if err != nil {
		t.Fatal(err)
	}
	w := e.watch(op, list.Msg.GetRevision())
	out := e.mustCtl("run", "--cpus", "0.1", "--mem", "32Mi", "--env", "MARKER="+envValue, "--", "/bin/sh", "-c", "echo "+argMarker+"; sleep 600")
	t.Log(strings.TrimSpace(out))
	ev := w.waitFor(t, "a TASK event with the marker", func(ev *pb.Event) bool {
		return ev.GetTask().GetEnv()["MARKER"] == envValue && ev.GetTask().GetState() == pb.TaskState_TASK_STATE_RUNNING
	})
	e.mustCtl("ps")
	e.mustCtl("revoke", ev.GetTask().GetAllocationId())

	// The control: a plain HTTP request (refused with a hint) whose
	// marker crosses the same link in clear text.
	control := "control-marker-" + newToken()[:16]
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Marker: %s\r\n\r\n", control)
	reply := make([]byte, 512)
	n, _ := conn.Read(reply)
	conn.Close()
	if !bytes.Contains(reply[:n], []byte("400")) {
		t.Errorf("plain HTTP to the API port got %q, want a 400 with a hint", reply[:n])
	}

	wire, packets := capture.stop()
	t.Logf("captured %d packets, %d payload bytes on port %d", packets, len(wire), port)
	if !bytes.Contains(wire, []byte(control)) {
		t.Fatalf("the capture missed the plain-text control marker: it cannot show that nothing else is in clear")
	}
	for what, s := range map[string]string{"the operator token": e.opToken, "the task's env value": envValue, "the task's command (an event payload)": argMarker} {
		if bytes.Contains(wire, []byte(s)) {
			t.Errorf("%s crossed the wire in clear text", what)
		}
	}
}
