package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	"github.com/dcos-kernel/dcos/plugins/contract"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// Task isolation (Config.TaskIsolation): every task runs as a user of its
// own: by default a uid of the task's owner (a framework principal) from
// Config.TaskUIDs, assigned the first time the owner launches on this
// agent and kept in <data-dir>/task-uids.json, so that it is stable across
// restarts and two owners never share one; gid = uid, no supplementary
// groups. A task whose Task.user the kernel allowed (the operator's
// --role-users) runs as root or as that user of the node's /etc/passwd.
// The agent hands the ids, the paths tasks must not see (its data dir and
// Config.HiddenPaths) and the task's sandbox to the driver in
// TaskConfig.Isolation, and gives the sandbox to the task's user (mode
// 0700). What the driver does with them is the contract's
// (contract.TaskIsolation, docs/plugins.md).

// DefaultTaskUIDs is Config.TaskUIDs's default: above systemd-nspawn's
// container range (524288–1879048191) and the usual /etc/subuid ranges
// (100000 + 65536·n), below 2^31.
const DefaultTaskUIDs = "1900000000-1900999999"

// uidsFile is the owner → uid table in the data dir.
const uidsFile = "task-uids.json"

// ParseUIDRange parses "FIRST-LAST" (1 ≤ FIRST ≤ LAST < 2^31).
func ParseUIDRange(s string) (first, last uint32, err error) {
	a, b, ok := strings.Cut(s, "-")
	f, ferr := strconv.ParseUint(a, 10, 31)
	l, lerr := strconv.ParseUint(b, 10, 31)
	if !ok || ferr != nil || lerr != nil || f == 0 || f > l {
		return 0, 0, fmt.Errorf("uid range %q: want FIRST-LAST with 1 <= FIRST <= LAST < 2147483648", s)
	}
	return uint32(f), uint32(l), nil
}

// uidTable assigns uids to owners, persisted in path. Safe for concurrent
// use.
type uidTable struct {
	path        string
	first, last uint32

	mu     sync.Mutex
	owners map[string]uint32
}

type uidFile struct {
	Owners map[string]uint32 `json:"owners"`
}

// loadUIDs reads path; owners whose uid is outside [first, last] (the
// range changed) lose it and get a new one when they next launch.
func loadUIDs(path string, first, last uint32) (*uidTable, error) {
	u := &uidTable{path: path, first: first, last: last, owners: map[string]uint32{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return u, nil
	}
	if err != nil {
		return nil, fmt.Errorf("task uids: %w", err)
	}
	var f uidFile
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("task uids: %s: %w", path, err)
	}
	used := map[uint32]bool{}
	for o, id := range f.Owners {
		if id >= first && id <= last && !used[id] {
			u.owners[o] = id
			used[id] = true
		}
	}
	return u, nil
}

// uidOf returns owner's uid, assigning the lowest free one (durably, before
// it is used) the first time.
func (u *uidTable) uidOf(owner string) (uint32, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if id, ok := u.owners[owner]; ok {
		return id, nil
	}
	used := make(map[uint32]bool, len(u.owners))
	for _, id := range u.owners {
		used[id] = true
	}
	id := u.first
	for used[id] {
		if id == u.last {
			return 0, fmt.Errorf("task uids: all %d uids of %d-%d are taken by owners", int(u.last-u.first)+1, u.first, u.last)
		}
		id++
	}
	next := make(map[string]uint32, len(u.owners)+1)
	for o, v := range u.owners {
		next[o] = v
	}
	next[owner] = id
	b, err := json.Marshal(uidFile{Owners: next})
	if err != nil {
		return 0, err
	}
	if err := atomicfile.WriteDurable(u.path, b); err != nil {
		return 0, fmt.Errorf("task uids: %w", err)
	}
	u.owners = next
	return id, nil
}

// taskIsolation returns the isolation of task t with sandbox sb, or nil
// when the agent runs tasks unisolated (then t must not ask for a user).
func (a *Agent) taskIsolation(t *syscallsv1.Task, sandbox string) (*contract.TaskIsolation, error) {
	name := t.GetUser()
	if a.uids == nil {
		if name != "" {
			return nil, fmt.Errorf("user %q: this agent runs tasks unisolated, as its own user (task isolation is off)", name)
		}
		return nil, nil
	}
	iso := &contract.TaskIsolation{HiddenPaths: a.hidden, Sandbox: sandbox}
	switch name {
	case "":
		owner := t.GetOwner()
		if owner == "" {
			return nil, errors.New("task has no owner: cannot choose its uid")
		}
		id, err := a.uids.uidOf(owner)
		if err != nil {
			return nil, err
		}
		iso.UID, iso.GID = id, id
	case "root":
	default:
		u, err := user.Lookup(name)
		if err != nil {
			return nil, fmt.Errorf("user %q: %w", name, err)
		}
		uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
		gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("user %q: uid %q gid %q: not numeric", name, u.Uid, u.Gid)
		}
		iso.UID, iso.GID = uint32(uid), uint32(gid)
		gids, err := u.GroupIds()
		if err != nil {
			return nil, fmt.Errorf("user %q: groups: %w", name, err)
		}
		iso.Groups = []uint32{}
		for _, g := range gids {
			if n, err := strconv.ParseUint(g, 10, 32); err == nil && uint32(n) != iso.GID {
				iso.Groups = append(iso.Groups, uint32(n))
			}
		}
	}
	return iso, nil
}

// giveSandbox makes the task's sandbox, its working dir (if inside it) and
// its writable volumes' mount points the task user's, the sandbox mode
// 0700. Host volumes are left as the operator made them.
func giveSandbox(iso *contract.TaskIsolation, sb *contract.Sandbox, workDir string) error {
	if iso == nil {
		return nil
	}
	uid, gid := int(iso.UID), int(iso.GID)
	dirs := []string{iso.Sandbox}
	if rel, err := filepath.Rel(iso.Sandbox, workDir); err == nil && filepath.IsLocal(rel) {
		for d := workDir; d != iso.Sandbox; d = filepath.Dir(d) {
			dirs = append(dirs, d)
		}
	}
	if sb != nil {
		for _, m := range sb.Mounts {
			if m.VolumeID != "" && !m.ReadOnly && m.Path != "" {
				dirs = append(dirs, m.Path)
			}
		}
	}
	for _, d := range slices.Compact(dirs) {
		if err := os.Lchown(d, uid, gid); err != nil {
			return fmt.Errorf("sandbox: %w", err)
		}
	}
	if err := os.Chmod(iso.Sandbox, 0o700); err != nil {
		return fmt.Errorf("sandbox: %w", err)
	}
	return nil
}
