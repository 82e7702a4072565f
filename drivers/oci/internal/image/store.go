package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Errors a caller can test with errors.Is; the error text names the image,
// the registry or the layer and the cause.
var (
	// ErrNotFound: the image (or container) is not in the registry or the store.
	ErrNotFound = errors.New("image not found")
	// ErrUnauthorized: the registry refused the credentials (or asked for some).
	ErrUnauthorized = errors.New("registry authentication failed")
	// ErrUnreachable: the registry did not answer.
	ErrUnreachable = errors.New("registry unreachable")
	// ErrInsecure: the registry is reachable only over plain HTTP and it is
	// neither on loopback nor in Options.Insecure.
	ErrInsecure = errors.New("plain HTTP refused")
	// ErrDigest: content did not match its digest.
	ErrDigest = errors.New("digest mismatch")
	// ErrPlatform: the image is for another OS or architecture.
	ErrPlatform = errors.New("wrong platform")
	// ErrMalformed: a manifest, index, config or layer could not be parsed.
	ErrMalformed = errors.New("malformed image")
	// ErrInUse: Remove was asked for an image a container still uses.
	ErrInUse = errors.New("image in use")
)

// Credentials for one registry: Username and Password (basic auth, also used
// for a registry's token exchange), or Token (sent as a bearer token).
type Credentials struct {
	Username, Password string
	Token              string
}

// Options configure a Store.
type Options struct {
	// Insecure lists registries (host or host:port) that may be reached over
	// plain HTTP besides loopback ones (127.0.0.0/8, ::1, localhost).
	Insecure []string
	// Auth returns the credentials for a registry host ("host[:port]"); nil,
	// or false, means anonymous.
	Auth func(registry string) (Credentials, bool)
	// Platform is "os/arch[/variant]"; default runtime.GOOS/runtime.GOARCH.
	Platform string
	// Logger receives pull progress; default discards.
	Logger *slog.Logger
	// Concurrency bounds how many layers of one pull download at once;
	// default 4.
	Concurrency int
}

// Image is a pulled image: its layers are unpacked in the store.
type Image struct {
	// Ref is the reference it was pulled by (the first one if several).
	Ref string
	// Digest is the manifest's digest, "sha256:…" (for an index, the
	// platform's manifest).
	Digest string
	Config ImageConfig
	// Layers are the unpacked layer directories, bottom first.
	Layers []string
	// Size is the unpacked size of all layers in bytes.
	Size int64
}

// ImageConfig is what a runtime needs from an image's config.
type ImageConfig struct {
	Entrypoint, Cmd, Env []string
	User, WorkingDir     string
	ExposedPorts         []string // "80/tcp", sorted
	StopSignal           string
}

// ImageInfo describes one image in the store (see List).
type ImageInfo struct {
	// Ref is the reference it was first pulled by; Refs all of them
	// (including normalized forms such as index.docker.io/library/…).
	Ref      string
	Refs     []string
	Digest   string
	Size     int64
	Tasks    int // containers mounted over it
	Pulled   time.Time
	LastUsed time.Time
}

// record is images/<hex>.json.
type record struct {
	Refs     []string    `json:"refs"`
	Digest   string      `json:"digest"`
	Config   ImageConfig `json:"config"`
	DiffIDs  []string    `json:"diff_ids"`
	Size     int64       `json:"size"`
	Pulled   time.Time   `json:"pulled"`
	LastUsed time.Time   `json:"last_used"`
}

// Store is an image store in one directory. Its methods are safe for
// concurrent use; one Store per directory per process.
type Store struct {
	dir      string
	opts     Options
	platform platform
	log      *slog.Logger

	// mu: pulls and mounts hold it shared, Remove and GC exclusively, so
	// layers are never collected under a pull or mount in progress.
	mu sync.RWMutex
	// imu guards images and refs.
	imu    sync.Mutex
	images map[string]*record // by digest
	refs   map[string]string  // ref → digest
	// cmu serialises container mounts and unmounts and guards containers.
	cmu sync.Mutex
	// containers is container id → image digest: the containers/<id>/image
	// files, read once at Open and kept up to date by Mount, Unmount and
	// Recover, so that listing (every agent heartbeat) reads no file.
	containers map[string]string

	pulls  singleflight.Group
	layers singleflight.Group
}

type platform struct{ os, arch, variant string }

func (p platform) String() string {
	s := p.os + "/" + p.arch
	if p.variant != "" {
		s += "/" + p.variant
	}
	return s
}

func parsePlatform(s string) (platform, error) {
	if s == "" {
		return platform{os: runtime.GOOS, arch: runtime.GOARCH}, nil
	}
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return platform{}, fmt.Errorf("platform %q: want os/arch[/variant]", s)
	}
	p := platform{os: parts[0], arch: parts[1]}
	if len(parts) == 3 {
		p.variant = parts[2]
	}
	return p, nil
}

// Open opens (creating if needed) the store in dir, loads its image records
// and removes unpacks a previous process left half done.
func Open(dir string, o Options) (*Store, error) {
	if dir == "" {
		return nil, errors.New("open image store: dir is empty")
	}
	p, err := parsePlatform(o.Platform)
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	dir, err = filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	for _, d := range []string{"layers/sha256", "images", "containers", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o700); err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
	}
	s := &Store{dir: dir, opts: o, platform: p, log: o.Logger, images: map[string]*record{}, refs: map[string]string{}}
	if err := s.cleanTmp(); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	if s.containers, err = s.scanContainers(); err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	ents, err := os.ReadDir(filepath.Join(dir, "images"))
	if err != nil {
		return nil, fmt.Errorf("open image store: %w", err)
	}
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, "images", e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("open image store: %w", err)
		}
		var r record
		if err := json.Unmarshal(b, &r); err != nil || r.Digest == "" {
			s.log.Warn("image store: dropping unreadable image record", "path", p, "err", err)
			_ = os.Remove(p)
			continue
		}
		if missing := s.missingLayer(&r); missing != "" {
			// Layers are renamed into place before the record is written,
			// so this is damage from outside: the next Pull of the image
			// fetches the missing layers again.
			s.log.Warn("image store: image record names a missing layer", "digest", r.Digest, "layer", missing)
		}
		s.images[r.Digest] = &r
		for _, ref := range r.Refs {
			s.refs[ref] = r.Digest
		}
	}
	return s, nil
}

func (s *Store) missingLayer(r *record) string {
	for _, d := range r.DiffIDs {
		if _, err := os.Stat(filepath.Join(s.layerDir(d), "size")); err != nil {
			return d
		}
	}
	return ""
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

func (s *Store) cleanTmp() error {
	ents, err := os.ReadDir(filepath.Join(s.dir, "tmp"))
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(s.dir, "tmp", e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func hexOf(digest string) string { return strings.TrimPrefix(digest, "sha256:") }

func (s *Store) layerDir(diffID string) string {
	return filepath.Join(s.dir, "layers", "sha256", hexOf(diffID))
}

func (s *Store) image(r *record) *Image {
	img := &Image{Digest: r.Digest, Config: r.Config, Size: r.Size}
	if len(r.Refs) > 0 {
		img.Ref = r.Refs[0]
	}
	for _, d := range r.DiffIDs {
		img.Layers = append(img.Layers, filepath.Join(s.layerDir(d), "fs"))
	}
	return img
}

// writeRecord persists r atomically (temp file, fsync, rename).
func (s *Store) writeRecord(r *record) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(s.dir, "images", hexOf(r.Digest)+".json"), b)
}

func writeFileAtomic(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(f.Name())
		return err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		os.Remove(f.Name())
		return err
	}
	return nil
}

// scanContainers reads container id → image digest from disk.
func (s *Store) scanContainers() (map[string]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, "containers"))
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(s.dir, "containers", e.Name(), "image"))
		if err != nil {
			continue // a container dir being created or removed
		}
		out[e.Name()] = strings.TrimSpace(string(b))
	}
	return out, nil
}

// containerImages returns a copy of container id → image digest.
func (s *Store) containerImages() map[string]string {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return maps.Clone(s.containers)
}

// List returns the images in the store, sorted by digest, with how many
// containers use each.
func (s *Store) List() ([]ImageInfo, error) {
	cs := s.containerImages()
	tasks := map[string]int{}
	for _, d := range cs {
		tasks[d]++
	}
	s.imu.Lock()
	defer s.imu.Unlock()
	out := make([]ImageInfo, 0, len(s.images))
	for _, r := range s.images {
		ref := ""
		if len(r.Refs) > 0 {
			ref = r.Refs[0]
		}
		out = append(out, ImageInfo{Ref: ref, Refs: append([]string(nil), r.Refs...), Digest: r.Digest, Size: r.Size,
			Tasks: tasks[r.Digest], Pulled: r.Pulled, LastUsed: r.LastUsed})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Digest < out[j].Digest })
	return out, nil
}

// lookup finds a record by digest ("sha256:…") or by a reference it was
// pulled by.
func (s *Store) lookup(refOrDigest string) (*record, bool) {
	s.imu.Lock()
	defer s.imu.Unlock()
	if r, ok := s.images[refOrDigest]; ok {
		return r, true
	}
	if d, ok := s.refs[refOrDigest]; ok {
		r, ok := s.images[d]
		return r, ok
	}
	if n, err := normalizeRef(refOrDigest); err == nil {
		if d, ok := s.refs[n]; ok {
			r, ok := s.images[d]
			return r, ok
		}
	}
	if i := strings.LastIndex(refOrDigest, "@"); i >= 0 { // repo@sha256:…
		r, ok := s.images[refOrDigest[i+1:]]
		return r, ok
	}
	return nil, false
}

// Get returns a pulled image by digest or reference without network access;
// ErrNotFound if the store does not have it.
func (s *Store) Get(refOrDigest string) (*Image, error) {
	r, ok := s.lookup(refOrDigest)
	if !ok {
		return nil, fmt.Errorf("get image %s: %w", refOrDigest, ErrNotFound)
	}
	return s.image(r), nil
}

// Remove deletes an image (by digest or reference) and the layers no other
// image uses. It refuses, with an error wrapping ErrInUse, while a container
// is mounted over the image; ErrNotFound if the store does not have it.
func (s *Store) Remove(refOrDigest string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.lookup(refOrDigest)
	if !ok {
		return fmt.Errorf("remove image %s: %w", refOrDigest, ErrNotFound)
	}
	cs := s.containerImages()
	var users []string
	for id, d := range cs {
		if d == r.Digest {
			users = append(users, id)
		}
	}
	if len(users) > 0 {
		sort.Strings(users)
		return fmt.Errorf("remove image %s: %w by %d container(s): %s", refOrDigest, ErrInUse, len(users), strings.Join(users, ", "))
	}
	if err := os.Remove(filepath.Join(s.dir, "images", hexOf(r.Digest)+".json")); err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("remove image %s: %w", refOrDigest, err)
	}
	// The image stays listed until its layers are gone: an operator who
	// waits for it to leave the list (dcosctl image rm) finds the disk freed.
	_, _, err := s.collect(r.Digest)
	s.imu.Lock()
	delete(s.images, r.Digest)
	for ref, d := range s.refs {
		if d == r.Digest {
			delete(s.refs, ref)
		}
	}
	s.imu.Unlock()
	if err != nil {
		return fmt.Errorf("remove image %s: %w", refOrDigest, err)
	}
	return nil
}

// GC removes layers no image in the store uses and leftovers of interrupted
// pulls. It returns the removed layers' diff_ids and the bytes freed. It waits
// for pulls and mounts in progress.
func (s *Store) GC(ctx context.Context) (removed []string, freed int64, err error) {
	if err := ctx.Err(); err != nil {
		return nil, 0, fmt.Errorf("image gc: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.cleanTmp(); err != nil {
		return nil, 0, fmt.Errorf("image gc: %w", err)
	}
	removed, freed, err = s.collect("")
	if err != nil {
		return removed, freed, fmt.Errorf("image gc: %w", err)
	}
	return removed, freed, nil
}

// collect removes the layer dirs no image uses, not counting the image
// whose digest is gone (being removed; "" for none); s.mu must be held
// exclusively.
func (s *Store) collect(gone string) (removed []string, freed int64, err error) {
	used := map[string]bool{}
	s.imu.Lock()
	for _, r := range s.images {
		if r.Digest == gone {
			continue
		}
		for _, d := range r.DiffIDs {
			used[hexOf(d)] = true
		}
	}
	s.imu.Unlock()
	base := filepath.Join(s.dir, "layers", "sha256")
	ents, err := os.ReadDir(base)
	if err != nil {
		return nil, 0, err
	}
	for _, e := range ents {
		if used[e.Name()] {
			continue
		}
		p := filepath.Join(base, e.Name())
		size := readSize(p)
		if err := os.RemoveAll(p); err != nil {
			return removed, freed, err
		}
		removed = append(removed, "sha256:"+e.Name())
		freed += size
		s.log.Info("image gc: removed layer", "diff_id", "sha256:"+e.Name(), "bytes", size)
	}
	return removed, freed, nil
}

func readSize(layerDir string) int64 {
	b, err := os.ReadFile(filepath.Join(layerDir, "size"))
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}
