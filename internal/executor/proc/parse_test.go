package proc

import "testing"

func TestParseStat(t *testing.T) {
	t.Parallel()
	// Fields 3..24 after the name: state ppid pgrp session tty tpgid flags
	// minflt cminflt majflt cmajflt utime stime cutime cstime priority nice
	// threads itrealvalue starttime vsize rss.
	tail := " 1 77 1 0 -1 4194560 100 0 0 0 11 22 33 44 20 0 1 0 12345 1000 10 "
	tests := []struct {
		name    string
		in      string
		want    stat
		wantErr bool
	}{
		{name: "plain", in: "42 (sleep) S" + tail, want: stat{state: 'S', pgrp: 77, utime: 11, stime: 22, cutime: 33, cstime: 44, start: 12345, rss: 10}},
		{name: "spaces and parens in name", in: "42 (a) b (c) Z" + tail, want: stat{state: 'Z', pgrp: 77, utime: 11, stime: 22, cutime: 33, cstime: 44, start: 12345, rss: 10}},
		{name: "no name", in: "42 sleep S" + tail, wantErr: true},
		{name: "short", in: "42 (sleep) S 1 1", wantErr: true},
		{name: "bad start", in: "42 (sleep) S 1 77 1 0 -1 4194560 100 0 0 0 11 22 0 0 20 0 1 0 x 1000 10", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && got != tt.want {
				t.Errorf("parseStat = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte("42 (a) b (c) Z 1 77 1 0 -1 4194560 100 0 0 0 11 22 0 0 20 0 1 0 12345 1000 10"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) { parseStat(b) })
}

func TestParseBootTime(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int64{"cpu 1 2\nbtime 1700000000\nprocesses 3\n": 1700000000, "cpu 1\n": 0, "btime x\n": 0} {
		if got, ok := parseBootTime([]byte(in)); got != want || ok != (want != 0) {
			t.Errorf("parseBootTime(%q) = %d, %v; want %d", in, got, ok, want)
		}
	}
}

func TestParseStatusField(t *testing.T) {
	status := []byte("Name:\tsleep\nState:\tS (sleeping)\nVmRSS:\t    1024 kB\nCpus_allowed:\t3\nCpus_allowed_list:\t0-1\nlast:x")
	for _, c := range []struct {
		field, want string
		ok          bool
	}{
		{"VmRSS", "1024 kB", true},
		{"Cpus_allowed", "3", true},        // not the longer name's line
		{"Cpus_allowed_list", "0-1", true}, // nor the shorter name's
		{"last", "x", true},                // no final newline
		{"Vm", "", false},                  // a prefix is not a field
		{"Missing", "", false},
	} {
		v, ok := parseStatusField(status, c.field)
		if v != c.want || ok != c.ok {
			t.Errorf("%s: %q, %v; want %q, %v", c.field, v, ok, c.want, c.ok)
		}
	}
}

func FuzzParseStatusField(f *testing.F) {
	f.Add([]byte("VmRSS:\t 12 kB\n"), "VmRSS")
	f.Add([]byte(""), "")
	f.Fuzz(func(t *testing.T, b []byte, field string) {
		v, ok := parseStatusField(b, field)
		if !ok && v != "" {
			t.Fatalf("not found but %q", v)
		}
	})
}
