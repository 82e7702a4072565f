package policy

// Func is a policy: it reads b and appends its answer to d (which arrives
// empty). It must be deterministic: the same batch, the same decision. A
// returned error fails the cycle for this policy (the kernel falls back to
// the last good one). It must not retain b or d after returning.
type Func func(b *Batch, d *Decision) error

var (
	registered Func
	wants      = WantAll
)

// Register makes f the module's policy, reading every part of the batch
// (RegisterWants(f, WantAll)). Call it once, from a package-level variable
// initialiser (`var _ = policy.Register(f)`): a reactor module runs no
// main. It returns true so that it can be used that way.
func Register(f Func) bool { return RegisterWants(f, WantAll) }

// RegisterWants is Register for a policy that reads only the optional
// parts of the batch in w: the module exports dcos_policy_wants returning
// w, and the host leaves the other optional parts out (with
// WantAllocations clear, Batch.Allocations is always empty). Declaring
// less than the policy reads makes it decide on missing data; declaring
// more only costs time.
func RegisterWants(f Func, w Wants) bool {
	if registered != nil {
		panic("policy: Register called twice")
	}
	registered, wants = f, w
	return true
}

// Wants is a set of the optional parts of a batch (docs/policy-abi.md,
// dcos_policy_wants).
type Wants uint32

const (
	// WantAllocations asks for the granted allocations
	// (Batch.Allocations), which only a policy that preempts needs: they
	// are the largest part of a busy cluster's batch.
	WantAllocations Wants = 1 << 0

	// WantAll is every optional part: what a module without
	// dcos_policy_wants receives.
	WantAll = WantAllocations
)

// Registered returns what RegisterWants declared (WantAll before any
// registration).
func Registered() Wants { return wants }

// guest holds the state of one module instance between calls.
type guest struct {
	in  []byte
	out []byte
	dec Decoder
	d   Decision
}

var g guest

// alloc returns a buffer of n bytes for the host to write a batch into.
func (g *guest) alloc(n int) []byte {
	if cap(g.in) < n {
		g.in = make([]byte, n)
	}
	g.in = g.in[:n]
	return g.in
}

// place runs the registered policy on the batch in g.in and returns the
// encoded decision (valid until the next call).
func (g *guest) place(n int) []byte {
	g.d.Reset()
	tuneGC()
	var err error
	switch b, derr := g.dec.DecodeBatch(g.in[:n]); {
	case registered == nil:
		err = errNoPolicy
	case derr != nil:
		err = derr
	default:
		err = safeCall(registered, b, &g.d)
	}
	g.out = EncodeDecision(g.out[:0], &g.d, err)
	collect()
	return g.out
}

type errString string

func (e errString) Error() string { return string(e) }

const errNoPolicy = errString("no policy registered (call policy.Register)")

// safeCall turns a panic in the policy into an error, so the host gets a
// policy error with the panic's message rather than a trap.
func safeCall(f Func, b *Batch, d *Decision) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = panicError{r}
		}
	}()
	return f(b, d)
}

type panicError struct{ v any }

func (p panicError) Error() string {
	if e, ok := p.v.(error); ok {
		return "panic: " + e.Error()
	}
	if s, ok := p.v.(string); ok {
		return "panic: " + s
	}
	return "panic in policy"
}
