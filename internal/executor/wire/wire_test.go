package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDecodeRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{name: "hello", in: `{"id":1,"op":"hello"}`},
		{name: "start", in: `{"id":2,"op":"start","start":{"task_id":"t","command":"sleep","args":["1"],"env":["PATH=/bin","E="],"work_dir":"/tmp","cgroups":["/sys/fs/cgroup/memory/x"]}}`},
		{name: "signal", in: `{"id":3,"op":"signal","task_id":"t","signal":15}`},
		{name: "forget", in: `{"id":3,"op":"forget","task_id":"t"}`},
		{name: "id 0", in: `{"op":"hello"}`, wantErr: "request id 0"},
		{name: "unknown op", in: `{"id":1,"op":"rm"}`, wantErr: `unknown op "rm"`},
		{name: "unknown field", in: `{"id":1,"op":"hello","x":1}`, wantErr: "unknown field"},
		{name: "trailing data", in: `{"id":1,"op":"hello"}{}`, wantErr: "trailing data"},
		{name: "signal 0", in: `{"id":1,"op":"signal","task_id":"t"}`, wantErr: "signal 0"},
		{name: "signal 65", in: `{"id":1,"op":"signal","task_id":"t","signal":65}`, wantErr: "signal 65"},
		{name: "get without task", in: `{"id":1,"op":"get"}`, wantErr: "task id"},
		{name: "task id with slash", in: `{"id":1,"op":"get","task_id":"../x"}`, wantErr: "task id"},
		{name: "task id dot dot", in: `{"id":1,"op":"get","task_id":".."}`, wantErr: "task id"},
		{name: "start without spec", in: `{"id":1,"op":"start"}`, wantErr: "no task"},
		{name: "empty command", in: `{"id":1,"op":"start","start":{"task_id":"t","command":""}}`, wantErr: "command is empty"},
		{name: "NUL in arg", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","args":["a\u0000"]}}`, wantErr: "NUL"},
		{name: "env without =", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","env":["A"]}}`, wantErr: "KEY=value"},
		{name: "env empty key", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","env":["=a"]}}`, wantErr: "KEY=value"},
		{name: "relative work dir", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","work_dir":"a"}}`, wantErr: "work dir"},
		{name: "isolated", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","isolation":{"uid":1900000000,"gid":1900000000,"hidden":["/var/lib/dcos"],"sandbox":"/var/lib/dcos/sb/t"}}}`},
		{name: "hidden /", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","isolation":{"uid":1,"gid":1,"hidden":["/"]}}}`, wantErr: "isolation path"},
		{name: "relative sandbox", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","isolation":{"uid":1,"gid":1,"sandbox":"sb"}}}`, wantErr: "isolation path"},
		{name: "relative stdout", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","stdout":"a"}}`, wantErr: "stdout"},
		{name: "unclean cgroup", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","cgroups":["/sys/../etc"]}}`, wantErr: "cgroup"},
		{name: "root cgroup", in: `{"id":1,"op":"start","start":{"task_id":"t","command":"x","cgroups":["/"]}}`, wantErr: "cgroup"},
		{name: "too long", in: `{"id":1,"op":"hello","task_id":"` + strings.Repeat("a", MaxMessage) + `"}`, wantErr: "exceeds"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := DecodeRequest([]byte(tt.in))
			if tt.wantErr == "" && err != nil {
				t.Fatalf("DecodeRequest: %v", err)
			}
			if tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("DecodeRequest = %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "hello", in: `{"id":1,"pid":42}`},
		{name: "error", in: `{"id":1,"err":"x","code":"not_found"}`},
		{name: "exit event", in: `{"event":"exit","task":{"id":"t","pid":42,"start_time":1,"started_at":"2026-01-01T00:00:00Z","exit":{"code":3,"at":"2026-01-01T00:00:01Z"}}}`},
		{name: "event without exit", in: `{"event":"exit","task":{"id":"t","pid":42,"start_time":1,"started_at":"2026-01-01T00:00:00Z"}}`, wantErr: true},
		{name: "unknown event", in: `{"event":"boom"}`, wantErr: true},
		{name: "reply with event", in: `{"id":1,"event":"exit"}`, wantErr: true},
		{name: "pid 1", in: `{"id":1,"task":{"id":"t","pid":1,"start_time":1,"started_at":"2026-01-01T00:00:00Z"}}`, wantErr: true},
		{name: "bad code", in: `{"id":1,"tasks":[{"id":"t","pid":9,"start_time":1,"started_at":"2026-01-01T00:00:00Z","exit":{"code":256,"at":"2026-01-01T00:00:01Z"}}]}`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := DecodeReply([]byte(tt.in)); (err != nil) != tt.wantErr {
				t.Fatalf("DecodeReply = %v, wantErr %v", err, tt.wantErr)
			}
		})
	}
}

func TestDecodeExitRecord(t *testing.T) {
	t.Parallel()
	info := TaskInfo{ID: "t", Pid: 42, StartTime: 7, StartedAt: time.Unix(1, 0).UTC(), Exit: &Exit{Code: -1, Signal: 9, At: time.Unix(2, 0).UTC()}}
	b, _ := json.Marshal(info)
	got, err := DecodeExitRecord(b, "t")
	if err != nil || *got.Exit != *info.Exit || got.Pid != 42 {
		t.Fatalf("DecodeExitRecord = %+v, %v", got, err)
	}
	if _, err := DecodeExitRecord(b, "other"); err == nil {
		t.Error("record of another task accepted")
	}
	info.Exit = nil
	b, _ = json.Marshal(info)
	if _, err := DecodeExitRecord(b, "t"); err == nil {
		t.Error("record without exit accepted")
	}
}

// FuzzDecodeRequest: the supervisor's decoder of client input never panics,
// and what it accepts re-encodes to something it accepts again.
func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(`{"id":2,"op":"start","start":{"task_id":"t","command":"sleep","args":["1"],"env":["PATH=/bin"],"work_dir":"/tmp","cgroups":["/sys/fs/cgroup/memory/x"]}}`))
	f.Add([]byte(`{"id":3,"op":"signal","task_id":"t","signal":15}`))
	f.Add([]byte(`{"id":1,"op":"list"}`))
	f.Add([]byte(`{"id":4,"op":"start","start":{"task_id":"c","command":"/usr/sbin/nginx","isolation":{"uid":0,"gid":0},"container":{"rootfs":"/r","hostname":"web","uid":101,"gid":101,"caps":null,"binds":[{"source":"/s","target":"/sandbox","read_only":true}],"dir":"/"}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeRequest(b)
		if err != nil {
			return
		}
		again, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeRequest(again); err != nil {
			t.Fatalf("accepted %q, but not its re-encoding %q: %v", b, again, err)
		}
	})
}

// FuzzDecodeReply: the driver's decoder of supervisor output never panics.
func FuzzDecodeReply(f *testing.F) {
	f.Add([]byte(`{"event":"exit","task":{"id":"t","pid":42,"start_time":1,"started_at":"2026-01-01T00:00:00Z","exit":{"code":3,"at":"2026-01-01T00:00:01Z"}}}`))
	f.Add([]byte(`{"id":1,"tasks":[{"id":"t","pid":9,"start_time":1,"started_at":"2026-01-01T00:00:00Z"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeReply(b)
		if err == nil && r.ID == 0 && (r.Task == nil || r.Task.Exit == nil) {
			t.Fatalf("accepted an event without an exit: %q", b)
		}
	})
}

// TestStartSpec_ContainerCaps: nil capabilities (the init's default) and
// an empty list (none) survive the wire as they are.
func TestStartSpec_ContainerCaps(t *testing.T) {
	for _, caps := range [][]string{nil, {}, {"CAP_CHOWN"}} {
		req := &Request{ID: 1, Op: OpStart, Start: &StartSpec{TaskID: "t", Command: "/bin/sh", Isolation: &Isolation{},
			Container: &Container{RootFS: "/r", Caps: caps, Binds: []Bind{{Source: "/s", Target: "/t", ReadOnly: true}}}}}
		b, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeRequest(b)
		if err != nil {
			t.Fatalf("DecodeRequest(%s): %v", b, err)
		}
		c := got.Start.Container
		if (c.Caps == nil) != (caps == nil) || len(c.Caps) != len(caps) || len(c.Binds) != 1 || !c.Binds[0].ReadOnly {
			t.Errorf("caps %#v: decoded %+v", caps, c)
		}
	}
}
