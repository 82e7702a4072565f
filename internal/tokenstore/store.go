package tokenstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// IDLen is the length of a token id: the first hex digits of its digest.
const IDLen = 12

// Bootstrap names: the principals of the tokens Bootstrap creates, and
// the created_by it records.
const (
	BootstrapOperator = "admin"
	BootstrapJoin     = "agent-join"
	BootstrapCreator  = "bootstrap"
)

// maxJoinSuffix bounds the suffixes Join tries to make an agent name
// unique ("agent-web1-2" … ).
const maxJoinSuffix = 1000

// Store creates, lists and revokes the tokens under one etcd prefix. It
// holds no state of its own and is safe for concurrent use; every method
// is one or a few etcd calls. Its errors are *kernel.Error values
// (InvalidArgument naming the field, NotFound, Unavailable when etcd does
// not answer), so the API answers them with their code.
type Store struct {
	cli    *clientv3.Client
	prefix string // <prefix>tokens/
	now    func() time.Time
}

// New returns the store of the tokens under prefix in cli ("" means
// "/dcos/", as for the kernel's store). The caller keeps cli open while
// the store is used.
func New(cli *clientv3.Client, prefix string) *Store {
	if prefix == "" {
		prefix = "/dcos/"
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{cli: cli, prefix: prefix + "tokens/", now: time.Now}
}

// WithClock makes s stamp created and expiry times with now (tests);
// it returns s.
func (s *Store) WithClock(now func() time.Time) *Store {
	s.now = now
	return s
}

// Prefix is the etcd key prefix of s's tokens, "<prefix>tokens/".
func (s *Store) Prefix() string { return s.prefix }

// NewSecret returns a random 32-byte token, hex-encoded (as api.NewToken).
func NewSecret() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed: " + err.Error()))
	}
	return hex.EncodeToString(b)
}

// Digest returns the hex SHA-256 digest of token, the key it is stored
// under.
func Digest(token string) string {
	d := sha256.Sum256([]byte(token))
	return hex.EncodeToString(d[:])
}

// ID returns the id of token: the first IDLen hex digits of its digest.
func ID(token string) string { return Digest(token)[:IDLen] }

func (s *Store) tokenKey(digest string) string { return s.prefix + digest }
func (s *Store) bootstrapKey() string          { return s.prefix + ".bootstrapped" }
func (s *Store) nameKey(name string) string    { return s.prefix + ".names/" + name }

// validName: what a token's name (the principal) may be: a letter or
// digit, then letters, digits and . _ - : @, at most 128 in all.
var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$`)

// validHostname: RFC 1123 labels of lowercase letters, digits and
// hyphens, joined by dots.
var validHostname = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

func fieldError(field, format string, args ...any) error {
	return &kernel.Error{Code: kernel.InvalidArgument, Msg: field + ": " + fmt.Sprintf(format, args...)}
}

// etcdError wraps a failed etcd call as Unavailable (the store did not
// answer), keeping a *kernel.Error as it is.
func etcdError(op string, err error) error {
	var ke *kernel.Error
	if errors.As(err, &ke) {
		return err
	}
	return &kernel.Error{Code: kernel.Unavailable, Msg: op + ": token store: " + err.Error()}
}

// newToken builds a new token of role named name, its secret and the
// etcd put that stores it.
func (s *Store) newToken(role kernel.Role, name string, ttl time.Duration, createdBy string) (string, *pb.TokenInfo, clientv3.Op, error) {
	secret := NewSecret()
	now := s.now()
	info := &pb.TokenInfo{Id: ID(secret), Name: name, Role: role.String(), Created: timestamppb.New(now), CreatedBy: createdBy}
	if ttl > 0 {
		info.Expires = timestamppb.New(now.Add(ttl))
	}
	b, err := proto.Marshal(info)
	if err != nil {
		return "", nil, clientv3.Op{}, err
	}
	return secret, info, clientv3.OpPut(s.tokenKey(Digest(secret)), string(b)), nil
}

// checkCreate checks a new token's role, name and ttl.
func checkCreate(role kernel.Role, name string, ttl time.Duration) error {
	switch {
	case role.String() == "unknown":
		return fieldError("role", "want operator, framework, agent or agent-join")
	case name == "":
		return fieldError("name", "required")
	case !validName.MatchString(name):
		return fieldError("name", "%q: want a letter or digit, then letters, digits and . _ - : @ (at most 128)", name)
	case ttl < 0:
		return fieldError("ttl", "%s is negative (unset or zero: no expiry)", ttl)
	}
	return nil
}

// Create stores a new token of role for principal name that expires after
// ttl (0: never), recording createdBy, and returns its secret (shown only
// here) and its info. Several tokens may share a name: they act as the
// same principal.
func (s *Store) Create(ctx context.Context, role kernel.Role, name string, ttl time.Duration, createdBy string) (string, *pb.TokenInfo, error) {
	if err := checkCreate(role, name, ttl); err != nil {
		return "", nil, err
	}
	secret, info, put, err := s.newToken(role, name, ttl, createdBy)
	if err != nil {
		return "", nil, fmt.Errorf("token create: %w", err)
	}
	if _, err := s.cli.Txn(ctx).Then(put).Commit(); err != nil {
		return "", nil, etcdError("token create", err)
	}
	return secret, info, nil
}

// List returns every stored token's info, expired ones included (Lookup
// refuses those), by creation time then id.
func (s *Store) List(ctx context.Context) ([]*pb.TokenInfo, error) {
	infos, _, err := s.list(ctx)
	return infos, err
}

// list returns the tokens' infos and their keys, in the same order.
func (s *Store) list(ctx context.Context) ([]*pb.TokenInfo, []string, error) {
	resp, err := s.cli.Get(ctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, nil, etcdError("token list", err)
	}
	type kv struct {
		info *pb.TokenInfo
		key  string
	}
	var all []kv
	for _, e := range resp.Kvs {
		info, ok, err := s.decode(e.Key, e.Value)
		if err != nil {
			return nil, nil, fmt.Errorf("token list: %w", err)
		}
		if ok {
			all = append(all, kv{info, string(e.Key)})
		}
	}
	slices.SortFunc(all, func(a, b kv) int {
		if c := a.info.GetCreated().AsTime().Compare(b.info.GetCreated().AsTime()); c != 0 {
			return c
		}
		return strings.Compare(a.info.GetId(), b.info.GetId())
	})
	infos, keys := make([]*pb.TokenInfo, len(all)), make([]string, len(all))
	for i, e := range all {
		infos[i], keys[i] = e.info, e.key
	}
	return infos, keys, nil
}

// decode decodes a token's key and value; ok is false for the
// bookkeeping keys (".…").
func (s *Store) decode(key, value []byte) (*pb.TokenInfo, bool, error) {
	rest := strings.TrimPrefix(string(key), s.prefix)
	if rest == "" || rest[0] == '.' {
		return nil, false, nil
	}
	info := &pb.TokenInfo{}
	if err := proto.Unmarshal(value, info); err != nil {
		return nil, false, fmt.Errorf("%s: %w", key, err)
	}
	if len(rest) >= IDLen {
		info.Id = rest[:IDLen]
	}
	return info, true, nil
}

// Revoke deletes the token whose id is id (its first 12 hex digits; any
// unambiguous prefix of at least 6 of its digest digits is accepted) or
// every token named name (exactly one of the two), and returns what it
// revoked. Nothing matching is NotFound; an id prefix that matches
// several tokens is InvalidArgument. Every Registry on the store stops
// accepting them as soon as its watch delivers the deletion.
func (s *Store) Revoke(ctx context.Context, id, name string) ([]*pb.TokenInfo, error) {
	switch {
	case id == "" && name == "":
		return nil, fieldError("id", "give an id or a name")
	case id != "" && name != "":
		return nil, fieldError("id", "give an id or a name, not both")
	}
	var keys []string
	var revoked []*pb.TokenInfo
	if id != "" {
		id = strings.ToLower(id)
		if len(id) < 6 || len(id) > 64 || strings.Trim(id, "0123456789abcdef") != "" {
			return nil, fieldError("id", "%q: want the token's id, 12 hex digits (as token ls shows)", id)
		}
		resp, err := s.cli.Get(ctx, s.tokenKey(id), clientv3.WithPrefix())
		if err != nil {
			return nil, etcdError("token revoke", err)
		}
		for _, e := range resp.Kvs {
			info, ok, err := s.decode(e.Key, e.Value)
			if err != nil {
				return nil, fmt.Errorf("token revoke: %w", err)
			}
			if ok {
				keys, revoked = append(keys, string(e.Key)), append(revoked, info)
			}
		}
		if len(keys) > 1 {
			return nil, fieldError("id", "%q matches %d tokens: give more of its digits", id, len(keys))
		}
		if len(keys) == 0 {
			return nil, &kernel.Error{Code: kernel.NotFound, Msg: "token revoke: no token with id " + id}
		}
	} else {
		infos, all, err := s.list(ctx)
		if err != nil {
			return nil, err
		}
		for i, info := range infos {
			if info.GetName() == name {
				keys, revoked = append(keys, all[i]), append(revoked, info)
			}
		}
		if len(keys) == 0 {
			return nil, &kernel.Error{Code: kernel.NotFound, Msg: "token revoke: no token named " + strconv.Quote(name)}
		}
	}
	ops := make([]clientv3.Op, len(keys))
	for i, k := range keys {
		ops[i] = clientv3.OpDelete(k)
	}
	if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
		return nil, etcdError("token revoke", err)
	}
	return revoked, nil
}

// Join mints an agent token for the agent on hostname: role agent, named
// "agent-"+hostname, or "agent-"+hostname+"-N" with the smallest N ≥ 2
// that no token has and no earlier Join handed out (names are never
// reused, so that a new machine with an old hostname is not taken for the
// agent the old name was bound to). hostname is lowercased and must be an
// RFC 1123 host name. createdBy is the join token's principal. Concurrent
// Joins of one hostname get distinct names (an etcd transaction claims
// the name).
func (s *Store) Join(ctx context.Context, hostname, createdBy string) (string, *pb.TokenInfo, error) {
	hostname = strings.ToLower(strings.TrimSuffix(hostname, "."))
	switch {
	case hostname == "":
		return "", nil, fieldError("hostname", "required")
	case len(hostname) > 100 || !validHostname.MatchString(hostname):
		return "", nil, fieldError("hostname", "%q: want a host name (letters, digits, hyphens and dots; labels of at most 63, at most 100 in all)", hostname)
	}
	infos, err := s.List(ctx)
	if err != nil {
		return "", nil, err
	}
	taken := map[string]bool{}
	for _, info := range infos {
		taken[info.GetName()] = true
	}
	base := "agent-" + hostname
	for n := 1; n <= maxJoinSuffix; n++ {
		name := base
		if n > 1 {
			name = base + "-" + strconv.Itoa(n)
		}
		if taken[name] {
			continue
		}
		secret, info, put, err := s.newToken(kernel.RoleAgent, name, 0, createdBy)
		if err != nil {
			return "", nil, fmt.Errorf("agent join: %w", err)
		}
		mark := s.nameKey(name)
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.Version(mark), "=", 0)).
			Then(clientv3.OpPut(mark, info.GetId()), put).
			Commit()
		if err != nil {
			return "", nil, etcdError("agent join", err)
		}
		if resp.Succeeded {
			return secret, info, nil
		}
	}
	return "", nil, &kernel.Error{Code: kernel.ResourceExhausted, Msg: fmt.Sprintf("agent join: %d agents named %s already joined", maxJoinSuffix, base)}
}

// Bootstrapped are the tokens Bootstrap created: secrets shown once.
type Bootstrapped struct {
	Operator, Join         string
	OperatorInfo, JoinInfo *pb.TokenInfo
}

// Bootstrap creates the first tokens of a cluster, an operator token
// (principal "admin") and an agent join token ("agent-join"), in one
// etcd transaction that also sets the store's bootstrap marker, if and
// only if the marker is absent. So of any number of kernels starting at
// once on one etcd exactly one bootstraps: it gets the secrets and ok
// true; every other call, then and later, gets ok false.
func (s *Store) Bootstrap(ctx context.Context) (Bootstrapped, bool, error) {
	var b Bootstrapped
	op, opInfo, opPut, err := s.newToken(kernel.RoleOperator, BootstrapOperator, 0, BootstrapCreator)
	if err != nil {
		return b, false, fmt.Errorf("bootstrap: %w", err)
	}
	join, joinInfo, joinPut, err := s.newToken(kernel.RoleAgentJoin, BootstrapJoin, 0, BootstrapCreator)
	if err != nil {
		return b, false, fmt.Errorf("bootstrap: %w", err)
	}
	mark := s.bootstrapKey()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(mark), "=", 0)).
		Then(clientv3.OpPut(mark, s.now().UTC().Format(time.RFC3339)), opPut, joinPut).
		Commit()
	if err != nil {
		return b, false, etcdError("bootstrap", err)
	}
	if !resp.Succeeded {
		return b, false, nil
	}
	return Bootstrapped{Operator: op, Join: join, OperatorInfo: opInfo, JoinInfo: joinInfo}, true, nil
}
