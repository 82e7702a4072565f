package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"connectrpc.com/connect"

	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Store is the framework-state calls an operator's tool (dcosctl job)
// makes on the jobs principal's state (Owner set on every request). A
// *framework.Client satisfies it.
type Store interface {
	StateGet(ctx context.Context, r *pb.StateGetRequest) (*pb.StateGetResponse, error)
	StatePut(ctx context.Context, r *pb.StatePutRequest) (*pb.StatePutResponse, error)
	StateDelete(ctx context.Context, r *pb.StateDeleteRequest) (*pb.StateDeleteResponse, error)
	StateList(ctx context.Context, r *pb.StateListRequest) (*pb.StateListResponse, error)
}

// ErrNotFound is returned for a job that has no spec or a run that does
// not exist.
var ErrNotFound = errors.New("not found")

// Operator reads and writes the jobs framework's state on behalf of an
// operator: Owner is the jobs framework's principal ("jobs" by default).
type Operator struct {
	Store Store
	Owner string
}

func (o Operator) get(ctx context.Context, key string, v any) (int64, error) {
	res, err := o.Store.StateGet(ctx, &pb.StateGetRequest{Key: key, Owner: o.Owner})
	if connect.CodeOf(err) == connect.CodeNotFound {
		return 0, ErrNotFound
	}
	if err != nil {
		return 0, err
	}
	if err := json.Unmarshal(res.GetEntry().GetValue(), v); err != nil {
		return 0, fmt.Errorf("%s: %w", key, err)
	}
	return res.GetEntry().GetRevision(), nil
}

// Apply stores spec as the job's next version (compare-and-swap on the
// current one), as a secret entry when the spec has a secretEnv. It
// returns the record written.
func (o Operator) Apply(ctx context.Context, spec *Job, now time.Time) (*SpecRecord, error) {
	for range 10 {
		var cur SpecRecord
		rev, err := o.get(ctx, SpecKey(spec.Name), &cur)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("apply %s: %w", spec.Name, err)
		}
		next := &SpecRecord{Spec: *spec, Version: 1, Created: now.UTC(), Applied: now.UTC()}
		if rev != 0 {
			next.Version, next.Created = cur.Version+1, cur.Created
		}
		b, _ := json.Marshal(next)
		_, err = o.Store.StatePut(ctx, &pb.StatePutRequest{Key: SpecKey(spec.Name), Value: b, Owner: o.Owner, ExpectedRevision: &rev,
			Secret: spec.HasSecrets()})
		if connect.CodeOf(err) == connect.CodeAborted {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("apply %s: %w", spec.Name, err)
		}
		return next, nil
	}
	return nil, fmt.Errorf("apply %s: too many concurrent writes", spec.Name)
}

// Spec returns a job's spec record (ErrNotFound when none).
func (o Operator) Spec(ctx context.Context, job string) (*SpecRecord, error) {
	var r SpecRecord
	if _, err := o.get(ctx, SpecKey(job), &r); err != nil {
		return nil, fmt.Errorf("job %s: %w", job, err)
	}
	r.Spec.Default()
	return &r, nil
}

// Specs returns every job's spec record, by name.
func (o Operator) Specs(ctx context.Context) ([]*SpecRecord, error) {
	res, err := o.Store.StateList(ctx, &pb.StateListRequest{Prefix: PrefixSpecs, Owner: o.Owner})
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var out []*SpecRecord
	for _, e := range res.GetEntries() {
		var r SpecRecord
		if json.Unmarshal(e.GetValue(), &r) == nil {
			r.Spec.Default()
			out = append(out, &r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Spec.Name < out[j].Spec.Name })
	return out, nil
}

// Runs returns a job's runs in the state, oldest first.
func (o Operator) Runs(ctx context.Context, job string) ([]*Run, error) {
	res, err := o.Store.StateList(ctx, &pb.StateListRequest{Prefix: RunsPrefix(job), Owner: o.Owner})
	if err != nil {
		return nil, fmt.Errorf("list runs of %s: %w", job, err)
	}
	var out []*Run
	for _, e := range res.GetEntries() {
		var r Run
		if json.Unmarshal(e.GetValue(), &r) == nil {
			out = append(out, &r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Seq < out[j].Seq })
	return out, nil
}

// Run returns one run by id (ErrNotFound when history no longer has it).
func (o Operator) Run(ctx context.Context, job, id string) (*Run, error) {
	runs, err := o.Runs(ctx, job)
	if err != nil {
		return nil, err
	}
	for _, r := range runs {
		if r.ID == id {
			return r, nil
		}
	}
	return nil, fmt.Errorf("run %s: %w", id, ErrNotFound)
}

// StartRun records a manual run of job, pending: the leading replica
// allocates and launches it. The run's number is one more than any the
// job used, taken with a create-only write, so two callers never share
// one.
func (o Operator) StartRun(ctx context.Context, job string, now time.Time) (*Run, error) {
	if _, err := o.Spec(ctx, job); err != nil {
		return nil, fmt.Errorf("run: %w", err)
	}
	for range 20 {
		runs, err := o.Runs(ctx, job)
		if err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		var meta Meta
		if _, err := o.get(ctx, MetaKey(job), &meta); err != nil && !errors.Is(err, ErrNotFound) {
			return nil, fmt.Errorf("run: %w", err)
		}
		seq := meta.LastSeq
		for _, r := range runs {
			seq = max(seq, r.Seq)
		}
		seq++
		r := &Run{ID: RunID(job, seq), Job: job, Seq: seq, Cause: CauseManual, State: RunPending, Created: now.UTC()}
		b, _ := json.Marshal(r)
		zero := int64(0)
		_, err = o.Store.StatePut(ctx, &pb.StatePutRequest{Key: RunKey(job, seq), Value: b, Owner: o.Owner, ExpectedRevision: &zero})
		if connect.CodeOf(err) == connect.CodeAborted {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("run: %w", err)
		}
		return r, nil
	}
	return nil, fmt.Errorf("run %s: too many concurrent runs started", job)
}

// Remove deletes a job's spec: the leading replica then stops its live
// runs and deletes their records.
func (o Operator) Remove(ctx context.Context, job string) error {
	_, err := o.Store.StateDelete(ctx, &pb.StateDeleteRequest{Key: SpecKey(job), Owner: o.Owner})
	if connect.CodeOf(err) == connect.CodeNotFound {
		return fmt.Errorf("rm %s: %w", job, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("rm %s: %w", job, err)
	}
	return nil
}
