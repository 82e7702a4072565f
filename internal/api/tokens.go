package api

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/dcos-kernel/dcos/kernel"
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

// Tokens maps bearer tokens to principals. It is immutable after
// construction and safe for concurrent use. Tokens are kept as SHA-256
// digests.
type Tokens struct {
	byDigest map[[32]byte]kernel.Principal
}

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
			return nil, fmt.Errorf("tokens[%d]: role %q is not operator, framework or agent", i, e.Role)
		}
		d := sha256.Sum256([]byte(e.Token))
		if _, dup := t.byDigest[d]; dup {
			return nil, fmt.Errorf("tokens[%d]: duplicate token", i)
		}
		t.byDigest[d] = kernel.Principal{Name: e.Name, Role: role}
	}
	return t, nil
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
