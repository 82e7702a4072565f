package agent

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"testing"
)

// recStage records its calls in log; it fails the call named in fail.
type recStage struct {
	n    string
	fail string // "setup" or "poststart"
	log  *[]string
	ctxs *[]error
}

func (s recStage) name() string { return s.n }

func (s recStage) setup(context.Context, *taskRun) error {
	*s.log = append(*s.log, "setup "+s.n)
	if s.fail == "setup" {
		return errors.New(s.n + ": broken")
	}
	return nil
}

func (s recStage) teardown(ctx context.Context, _ *taskRun) error {
	*s.log = append(*s.log, "teardown "+s.n)
	*s.ctxs = append(*s.ctxs, ctx.Err())
	return nil
}

type recPostStage struct{ recStage }

func (s recPostStage) poststart(context.Context, *taskRun) error {
	*s.log = append(*s.log, "poststart "+s.n)
	if s.fail == "poststart" {
		return errors.New(s.n + ": poststart broken")
	}
	return nil
}

func (s recPostStage) running(*taskRun) { *s.log = append(*s.log, "running "+s.n) }

// TestAgent_runStart: the runner sets stages up in order, then runs their
// post-start steps; a failure unwinds, last first, exactly the stages
// whose setup began (the failing one too), with a live context even when
// the start's own context is cancelled; a task that ran unwinds every
// stage.
func TestAgent_runStart(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fail     map[string]string // stage → call that fails
		cancel   bool              // the start's context is cancelled
		wantErr  string
		wantLog  string
		teardown bool // then unwind the running task
	}{
		{name: "ok", teardown: true,
			wantLog: "setup a,setup b,setup c,poststart b,running b,teardown c,teardown b,teardown a"},
		{name: "setup fails half-way", fail: map[string]string{"b": "setup"}, wantErr: "b: broken",
			wantLog: "setup a,setup b,teardown b,teardown a"},
		{name: "first setup fails", fail: map[string]string{"a": "setup"}, wantErr: "a: broken",
			wantLog: "setup a,teardown a"},
		{name: "poststart fails", fail: map[string]string{"b": "poststart"}, wantErr: "b: poststart broken",
			wantLog: "setup a,setup b,setup c,poststart b,teardown c,teardown b,teardown a"},
		{name: "cancelled start", fail: map[string]string{"c": "setup"}, cancel: true, wantErr: "c: broken",
			wantLog: "setup a,setup b,setup c,teardown c,teardown b,teardown a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			var ctxs []error
			mk := func(n string) recStage { return recStage{n: n, fail: tc.fail[n], log: &log, ctxs: &ctxs} }
			stages := []stage{mk("a"), recPostStage{mk("b")}, mk("c")}
			a := &Agent{log: slog.New(slog.DiscardHandler)}
			r := &taskRun{a: a, tk: &task{id: "t"}, stages: stages}
			ctx, cancel := context.WithCancel(context.Background())
			if tc.cancel {
				cancel()
			}
			defer cancel()
			err := a.runStart(ctx, r)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr) {
				t.Fatalf("runStart = %v, want %q", err, tc.wantErr)
			}
			if err == nil {
				a.runRunning(r)
				if tc.teardown {
					a.runTeardown(&taskRun{a: a, tk: r.tk, stages: stages, began: len(stages)})
				}
			}
			if got := strings.Join(log, ","); got != tc.wantLog {
				t.Errorf("calls:\n got %s\nwant %s", got, tc.wantLog)
			}
			if slices.ContainsFunc(ctxs, func(e error) bool { return e != nil }) {
				t.Errorf("teardown ran with a done context: %v", ctxs)
			}
		})
	}
}
