package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/dcos-kernel/dcos/kernel"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// TokenEntry is one line of a tokens file.
type TokenEntry struct {
	Token string `json:"token"`
	Name  string `json:"name"`
	Role  string `json:"role"`
}

// TokensFile is the on-disk form: {"tokens": [{"token", "name", "role"}]}.
type TokensFile struct {
	Tokens []TokenEntry `json:"tokens"`
}

// TokenLookup authenticates bearer tokens: the door calls Lookup on every
// request, so it must be cheap and safe for concurrent use. *Tokens (a
// tokens file), tokenstore.Registry (the cluster's stored tokens) and
// TokenChain (several) implement it.
type TokenLookup interface {
	// Lookup returns the principal of token, and false for a token it
	// does not accept (unknown, revoked or expired).
	Lookup(token string) (kernel.Principal, bool)
}

// TokenChain looks a token up in each of its lookups in turn: the first
// that accepts it answers.
type TokenChain []TokenLookup

// Lookup implements TokenLookup.
func (c TokenChain) Lookup(token string) (kernel.Principal, bool) {
	for _, l := range c {
		if p, ok := l.Lookup(token); ok {
			return p, true
		}
	}
	return kernel.Principal{}, false
}

// Tokens maps bearer tokens to principals. It is immutable after
// construction and safe for concurrent use. Tokens are kept as SHA-256
// digests.
type Tokens struct {
	byDigest map[[32]byte]kernel.Principal
	infos    []*pb.TokenInfo // in file order
}

var (
	_ TokenLookup = (*Tokens)(nil)
	_ TokenLookup = TokenChain(nil)
)

// NewTokens checks entries (non-empty token and name, known role, no
// duplicate token) and indexes them.
func NewTokens(entries []TokenEntry) (*Tokens, error) {
	t := &Tokens{byDigest: map[[32]byte]kernel.Principal{}}
	for i, e := range entries {
		role, ok := kernel.ParseRole(e.Role)
		switch {
		case len(e.Token) < 16:
			return nil, fmt.Errorf("tokens[%d]: token must be at least 16 characters", i)
		case e.Name == "":
			return nil, fmt.Errorf("tokens[%d]: name required", i)
		case !ok:
			return nil, fmt.Errorf("tokens[%d]: role %q is not operator, framework, agent or agent-join", i, e.Role)
		}
		d := sha256.Sum256([]byte(e.Token))
		if _, dup := t.byDigest[d]; dup {
			return nil, fmt.Errorf("tokens[%d]: duplicate token", i)
		}
		t.byDigest[d] = kernel.Principal{Name: e.Name, Role: role}
		t.infos = append(t.infos, &pb.TokenInfo{Id: hex.EncodeToString(d[:])[:12], Name: e.Name, Role: role.String(), CreatedBy: FileCreator})
	}
	return t, nil
}

// FileCreator is the created_by that TokenList shows for a tokens file's
// tokens.
const FileCreator = "tokens-file"

// Infos describes the tokens (created_by FileCreator, no creation time),
// in file order. The caller must not change them.
func (t *Tokens) Infos() []*pb.TokenInfo {
	if t == nil {
		return nil
	}
	return t.infos
}

// holds reports whether t has a token with that id or, if id is "", a
// token named name.
func (t *Tokens) holds(id, name string) bool {
	for _, info := range t.Infos() {
		if (id != "" && strings.HasPrefix(info.GetId(), strings.ToLower(id))) || (id == "" && info.GetName() == name) {
			return true
		}
	}
	return false
}

// Lookup returns the principal of token.
func (t *Tokens) Lookup(token string) (kernel.Principal, bool) {
	p, ok := t.byDigest[sha256.Sum256([]byte(token))]
	return p, ok
}

// LoadTokensFile reads a tokens file.
func LoadTokensFile(path string) (TokensFile, error) {
	var f TokensFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("tokens: %w", err)
	}
	if err := json.Unmarshal(b, &f); err != nil {
		return f, fmt.Errorf("tokens %s: %w", path, err)
	}
	return f, nil
}

// SaveTokensFile writes f to path with mode 0600.
func SaveTokensFile(path string, f TokensFile) error {
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path+".tmp", append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	// A leftover .tmp keeps its mode through WriteFile.
	if err := os.Chmod(path+".tmp", 0o600); err != nil {
		return fmt.Errorf("tokens: %w", err)
	}
	return os.Rename(path+".tmp", path)
}

// NewToken returns a random 32-byte token, hex-encoded.
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(errors.New("crypto/rand failed: " + err.Error()))
	}
	return hex.EncodeToString(b)
}

// EnsureNamed returns the first entry of f with role and name, adding
// one with a new token if there is none. It reports whether f changed.
func (f *TokensFile) EnsureNamed(role, name string) (TokenEntry, bool) {
	for _, e := range f.Tokens {
		if e.Role == role && e.Name == name {
			return e, false
		}
	}
	e := TokenEntry{Token: NewToken(), Name: name, Role: role}
	f.Tokens = append(f.Tokens, e)
	return e, true
}

// Ensure returns the first entry of f with role, adding one named name
// with a new token if there is none. It reports whether f changed.
func (f *TokensFile) Ensure(role, name string) (TokenEntry, bool) {
	for _, e := range f.Tokens {
		if e.Role == role {
			return e, false
		}
	}
	e := TokenEntry{Token: NewToken(), Name: name, Role: role}
	f.Tokens = append(f.Tokens, e)
	return e, true
}
