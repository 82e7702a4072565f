package ctl

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/internal/kerneltest"
	"github.com/dcos-kernel/dcos/kernel"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestRun_Audit runs dcosctl audit against a real kernel behind the API
// door: the table, the filters, -o json, -f and --verify.
func TestRun_Audit(t *testing.T) {
	isolate(t)
	srv := kerneltest.Start(t, kerneltest.Options{Kernel: func(c *kernel.Config) { c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil)) }})
	op, fw := kclient.New(srv.URL, kerneltest.OperatorToken), kclient.New(srv.URL, kerneltest.FrameworkToken)
	ctx := context.Background()
	if _, err := fw.Allocate(ctx, connect.NewRequest(&syscallsv1.AllocateRequest{Role: "web", Resources: &syscallsv1.Resources{Cpus: 1, MemBytes: 1 << 20}})); err != nil {
		t.Fatal(err)
	}
	if _, err := fw.RoleSet(ctx, connect.NewRequest(&syscallsv1.RoleSetRequest{Name: "web", Weight: proto.Float64(2)})); connect.CodeOf(err) != connect.CodePermissionDenied {
		t.Fatalf("framework RoleSet: %v", err)
	}
	if _, err := op.RoleSet(ctx, connect.NewRequest(&syscallsv1.RoleSetRequest{Name: "web", Weight: proto.Float64(2)})); err != nil {
		t.Fatal(err)
	}
	ctl := func(ctx context.Context, args ...string) result {
		t.Helper()
		return runCtl(t, ctx, "", append([]string{"--kernel", srv.URL, "--token", kerneltest.OperatorToken}, args...)...)
	}

	t.Run("table", func(t *testing.T) {
		r := ctl(ctx, "audit")
		var got [][]string
		for _, l := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
			f := strings.Fields(l)
			got = append(got, append(f[1:2:2], f[2:]...)) // all but TIME
		}
		want := [][]string{
			{"PRINCIPAL", "CALL", "TARGETS", "CODE"},
			{"fw-a", "Allocate", "web,a-2", "ok"},
			{"fw-a", "RoleSet", "-", "permission_denied"},
			{"ops", "RoleSet", "web", "ok"},
		}
		if r.code != 0 || fmtRows(got) != fmtRows(want) {
			t.Fatalf("audit: exit %d\n%s\nstderr %s\nwant rows %v", r.code, r.stdout, r.stderr, want)
		}
	})
	t.Run("json filters", func(t *testing.T) {
		r := ctl(ctx, "-o", "json", "audit", "--call", "RoleSet", "--principal", "fw-a")
		var res syscallsv1.AuditListResponse
		if err := protojson.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.GetRecords()) != 1 || res.GetRecords()[0].GetCode() != "permission_denied" {
			t.Fatalf("audit -o json --call RoleSet --principal fw-a: %v, %v\n%s", &res, err, r.stdout)
		}
		r = ctl(ctx, "-o", "json", "audit", "--since", time.Now().Add(time.Hour).Format(time.RFC3339))
		if err := protojson.Unmarshal([]byte(r.stdout), &res); err != nil || len(res.GetRecords()) != 0 {
			t.Fatalf("audit --since an hour ahead: %v, %v", &res, err)
		}
	})
	t.Run("follow", func(t *testing.T) {
		fctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		go func() {
			time.Sleep(500 * time.Millisecond)
			op.RoleSet(ctx, connect.NewRequest(&syscallsv1.RoleSetRequest{Name: "batch", Weight: proto.Float64(3)}))
		}()
		r := ctl(fctx, "-o", "json", "audit", "-f", "--call", "RoleSet", "--principal", "ops")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if r.code != 0 || len(lines) != 2 || !strings.Contains(lines[1], `"batch"`) {
			t.Fatalf("audit -f: exit %d, %d lines:\n%s\nstderr %s", r.code, len(lines), r.stdout, r.stderr)
		}
	})
	t.Run("verify", func(t *testing.T) {
		r := ctl(ctx, "audit", "--verify")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "audit trail verified: 4 records, seq 1–4; head hash ") {
			t.Fatalf("audit --verify: exit %d, %q, %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("usage", func(t *testing.T) {
		for _, args := range [][]string{{"audit", "--verify", "-f"}, {"audit", "--since", "yesterday"}, {"audit", "extra"}} {
			if r := ctl(ctx, args...); r.code == 0 || r.stderr == "" {
				t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
			}
		}
	})
}

func fmtRows(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(strings.Join(r, " ") + "\n")
	}
	return b.String()
}
