package store

import (
	"errors"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/protobuf/proto"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Secret framework state (StatePutRequest.secret; docs/security.md,
// "Secrets"). The kernel keeps a secret entry's value in clear in memory
// (StateGet answers its owner as for any entry); the store seals it at
// its edge — Commit writes ciphertext bound to the entry's etcd key, and
// the one decoder of keys (decodeKV, shared by Load and the Follower)
// opens it — so etcd's files, its snapshots and backups hold ciphertext
// only. Tasks' secret_env needs nothing here: the kernel seals it before
// it enters the table.

// errNoSealer is what a secret entry meets on a store without a key.
var errNoSealer = errors.New("a secret state entry needs the kernel's key-encryption key (--kek-file), and this store has none")

// WithSealer makes the store seal the values of secret state entries in
// Commit and open them in Load and in its Follower, with sealer (an
// *seal.Keyring). Without one a Commit of a secret entry fails and so
// does a Load that meets one. It returns s; call it before s is shared
// (stores made by Fenced share it).
func (s *Etcd) WithSealer(sealer kernel.Sealer) *Etcd {
	s.sealer = sealer
	return s
}

// appendStateOps is appendKeyedOps for the framework state: a secret
// entry's value is sealed under its etcd key.
func (s *Etcd) appendStateOps(ops []clientv3.Op, objs map[kernel.StateKey]*pb.StateEntry) ([]clientv3.Op, error) {
	for k, e := range objs {
		key := s.stateKey(k)
		if isNil(e) {
			ops = append(ops, clientv3.OpDelete(key))
			continue
		}
		if e.GetSecret() {
			if s.sealer == nil {
				return nil, fmt.Errorf("state %s: %w", key, errNoSealer)
			}
			sealed, err := s.sealer.Seal(e.GetValue(), []byte(key))
			if err != nil {
				return nil, fmt.Errorf("state %s: %w", key, err)
			}
			// A shallow copy: the table's entry keeps its clear value.
			e = &pb.StateEntry{Key: e.GetKey(), Value: sealed, Owner: e.GetOwner(), Secret: true}
		}
		b, err := proto.Marshal(e)
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(key, string(b)))
	}
	return ops, nil
}

// openState opens m, decoded from the etcd key key, when it is secret.
func (s *Etcd) openState(key []byte, m *pb.StateEntry) error {
	if !m.GetSecret() {
		return nil
	}
	if s.sealer == nil {
		return errNoSealer
	}
	v, err := s.sealer.Open(m.GetValue(), key)
	if err != nil {
		return fmt.Errorf("open secret state: %w", err)
	}
	m.Value = v
	return nil
}
