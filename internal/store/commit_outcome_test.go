package store

import (
	"context"
	"errors"
	"testing"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TestEtcd_CommitOutcome: a commit etcd never answered may still be
// applied (kernel.ErrCommitUnknown: the kernel must read the store back);
// a refusal etcd answered (no space, too large) and the fence are
// definite: nothing was written.
func TestEtcd_CommitOutcome(t *testing.T) {
	t.Parallel()
	s, e := startStore(t)
	c := &kernel.Changes{Agents: map[string]*pb.Agent{"agent-1": {Id: "agent-1"}}}
	if _, err := s.Commit(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	fenced := s.Fenced("no-such-election-key", 1)
	if _, err := fenced.Commit(context.Background(), c); !errors.Is(err, kernel.ErrFenced) || errors.Is(err, kernel.ErrCommitUnknown) {
		t.Errorf("fenced commit: %v, want ErrFenced and a known outcome", err)
	}
	for _, refused := range []error{rpctypes.ErrNoSpace, rpctypes.ErrGRPCNoSpace, rpctypes.ErrRequestTooLarge} {
		if !refusedBeforeApply(refused) {
			t.Errorf("%v: want a refusal before apply", refused)
		}
	}
	if refusedBeforeApply(context.DeadlineExceeded) || refusedBeforeApply(rpctypes.ErrTimeout) {
		t.Error("a timeout taken for a refusal")
	}
	e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), CommitTimeout)
	defer cancel()
	if _, err := s.Commit(ctx, c); !errors.Is(err, kernel.ErrCommitUnknown) {
		t.Errorf("commit to a stopped etcd: %v, want ErrCommitUnknown", err)
	}
}
