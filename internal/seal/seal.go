package seal

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
)

// magic starts every sealed value (version 1 of the format).
var magic = []byte("dcs1")

// ErrNotSealed is returned by Open for a value that is not a sealed value.
var ErrNotSealed = errors.New("seal: not a sealed value")

// ErrUnknownKey is returned by Open for a value sealed under a key the
// keyring lacks (another cluster's KEK, or one removed by a rotation).
var ErrUnknownKey = errors.New("seal: sealed under a key this keyring does not have")

// ErrTampered is returned by Open when authentication fails: the value or
// its associated data was altered.
var ErrTampered = errors.New("seal: message authentication failed (value altered, or associated data differs)")

// dekUses is how many values one DEK seals before a new one is made
// (random 96-bit nonces stay far from collision well below 2^32).
const dekUses = 1 << 20

// Key is one key-encryption key.
type Key struct {
	id   string // hex of the first 8 bytes of sha256(key)
	aead cipher.AEAD
}

// ID is the key's public identifier, written beside every value it seals.
func (k *Key) ID() string { return k.id }

func newKey(raw []byte) (*Key, error) {
	if len(raw) != 32 {
		return nil, fmt.Errorf("seal: a key is 32 bytes, not %d", len(raw))
	}
	a, err := newAEAD(raw)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(raw)
	return &Key{id: hex.EncodeToString(sum[:8]), aead: a}, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	b, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	return cipher.NewGCM(b)
}

// Keyring is a KEK file's keys: the primary seals, every key opens. It is
// safe for concurrent use.
type Keyring struct {
	primary *Key
	byID    map[string]*Key

	mu      sync.Mutex
	dek     cipher.AEAD // the current DEK, nil until the first Seal
	wrapped []byte      // dek wrapped by primary
	uses    int
	opened  map[string]cipher.AEAD // unwrapped DEKs by wrapped bytes
}

// NewKeyring returns a keyring of raw 32-byte keys, the first primary.
func NewKeyring(raw ...[]byte) (*Keyring, error) {
	if len(raw) == 0 {
		return nil, errors.New("seal: a keyring needs a key")
	}
	r := &Keyring{byID: map[string]*Key{}, opened: map[string]cipher.AEAD{}}
	for _, b := range raw {
		k, err := newKey(b)
		if err != nil {
			return nil, err
		}
		if r.primary == nil {
			r.primary = k
		}
		r.byID[k.id] = k
	}
	return r, nil
}

// Primary is the key new values are sealed under.
func (r *Keyring) Primary() *Key { return r.primary }

// GenerateKey returns a new random 32-byte key.
func GenerateKey() []byte {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return b
}

// Seal encrypts plaintext, binding it to aad (e.g. the key or id the value
// is stored under, so that a sealed value moved elsewhere fails to open).
// The result starts with "dcs1" and is safe to store anywhere.
func (r *Keyring) Seal(plaintext, aad []byte) ([]byte, error) {
	r.mu.Lock()
	if r.dek == nil || r.uses >= dekUses {
		raw := GenerateKey()
		dek, err := newAEAD(raw)
		if err != nil {
			r.mu.Unlock()
			return nil, err
		}
		r.dek, r.wrapped, r.uses = dek, r.wrap(raw), 0
		r.opened[string(r.wrapped)] = dek
	}
	r.uses++
	dek, wrapped := r.dek, r.wrapped
	r.mu.Unlock()

	id := r.primary.id
	out := make([]byte, 0, len(magic)+1+len(id)+2+len(wrapped)+12+len(plaintext)+16)
	out = append(out, magic...)
	out = append(out, byte(len(id)))
	out = append(out, id...)
	out = binary.BigEndian.AppendUint16(out, uint16(len(wrapped)))
	out = append(out, wrapped...)
	nonce := make([]byte, dek.NonceSize())
	rand.Read(nonce)
	out = append(out, nonce...)
	return dek.Seal(out, nonce, plaintext, aad), nil
}

// wrap encrypts a DEK under the primary KEK.
func (r *Keyring) wrap(dek []byte) []byte {
	nonce := make([]byte, r.primary.aead.NonceSize())
	rand.Read(nonce)
	return r.primary.aead.Seal(nonce, nonce, dek, []byte("dcos-dek"))
}

// Open decrypts what Seal sealed with the same aad. Errors: ErrNotSealed,
// ErrUnknownKey, ErrTampered.
func (r *Keyring) Open(sealed, aad []byte) ([]byte, error) {
	if !IsSealed(sealed) {
		return nil, ErrNotSealed
	}
	b := sealed[len(magic):]
	if len(b) < 1 || len(b) < 1+int(b[0])+2 {
		return nil, ErrNotSealed
	}
	id := string(b[1 : 1+int(b[0])])
	b = b[1+int(b[0]):]
	n := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < n+12+16 {
		return nil, ErrNotSealed
	}
	wrapped, nonce, ct := b[:n], b[n:n+12], b[n+12:]
	dek, err := r.unwrap(id, wrapped)
	if err != nil {
		return nil, err
	}
	pt, err := dek.Open(nil, nonce, ct, aad)
	if err != nil {
		return nil, ErrTampered
	}
	return pt, nil
}

func (r *Keyring) unwrap(id string, wrapped []byte) (cipher.AEAD, error) {
	r.mu.Lock()
	dek := r.opened[string(wrapped)]
	r.mu.Unlock()
	if dek != nil {
		return dek, nil
	}
	k := r.byID[id]
	if k == nil {
		return nil, fmt.Errorf("%w (key %s)", ErrUnknownKey, id)
	}
	if len(wrapped) < k.aead.NonceSize() {
		return nil, ErrNotSealed
	}
	raw, err := k.aead.Open(nil, wrapped[:k.aead.NonceSize()], wrapped[k.aead.NonceSize():], []byte("dcos-dek"))
	if err != nil {
		return nil, ErrTampered
	}
	dek, err = newAEAD(raw)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	if len(r.opened) > 1024 { // bounded: DEKs are few, but sealed values come from the store
		clear(r.opened)
	}
	r.opened[string(wrapped)] = dek
	r.mu.Unlock()
	return dek, nil
}

// IsSealed reports whether b looks like a sealed value (its magic).
func IsSealed(b []byte) bool { return bytes.HasPrefix(b, magic) }

// KEK files hold one key per line, "kek1:" and the key in base64 (std);
// the first line is the primary key; blank lines and lines starting with
// '#' are ignored.
const linePrefix = "kek1:"

// LoadKeyring reads the KEK file at path. It refuses a file that group or
// others may read or write, or that is not a regular file (the error says
// how to fix it).
func LoadKeyring(path string) (*Keyring, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("kek: %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("kek: %s has mode %04o: a key-encryption key must be readable by its owner only (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kek: %w", err)
	}
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		enc, ok := strings.CutPrefix(s, linePrefix)
		if !ok {
			return nil, fmt.Errorf("kek: %s line %d: want %q and a base64 key", path, line, linePrefix)
		}
		raw, err := base64.StdEncoding.DecodeString(enc)
		if err != nil || len(raw) != 32 {
			return nil, fmt.Errorf("kek: %s line %d: not a base64 32-byte key", path, line)
		}
		keys = append(keys, raw)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("kek: %s holds no key", path)
	}
	return NewKeyring(keys...)
}

// FormatKeys returns a KEK file's text for raw keys, the first primary.
func FormatKeys(raw ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString("# dcos key-encryption key: keep secret, mode 0600; every kernel of the cluster needs this file\n")
	for _, k := range raw {
		b.WriteString(linePrefix + base64.StdEncoding.EncodeToString(k) + "\n")
	}
	return b.Bytes()
}

// LoadOrCreate loads the KEK file at path, first creating it with a new
// random key (mode 0600, durably) when it does not exist. created reports
// whether it did.
func LoadOrCreate(path string) (r *Keyring, created bool, err error) {
	r, err = LoadKeyring(path)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return r, false, err
	}
	if err := atomicfile.WriteDurable(path, FormatKeys(GenerateKey())); err != nil {
		return nil, false, fmt.Errorf("kek: %w", err)
	}
	r, err = LoadKeyring(path)
	return r, err == nil, err
}
