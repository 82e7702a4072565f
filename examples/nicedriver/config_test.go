package main

import (
	"reflect"
	"testing"
)

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    config
		wantErr bool
	}{
		{"empty", ``, config{Nice: 10}, false},
		{"blank", " \n", config{Nice: 10}, false},
		{"null", `null`, config{Nice: 10}, false},
		{"empty object", `{}`, config{Nice: 10}, false},
		{"nice 0", `{"nice": 0}`, config{Nice: 0}, false},
		{"nice and env", `{"nice": 19, "env": {"K": "V"}}`, config{Nice: 19, Env: map[string]string{"K": "V"}}, false},
		{"nice 20", `{"nice": 20}`, config{}, true},
		{"nice fractional", `{"nice": 1.5}`, config{}, true},
		{"unknown field", `{"nic": 1}`, config{}, true},
		{"array", `[1]`, config{}, true},
		{"trailing", `{"nice": 1}x`, config{}, true},
		{"empty env name", `{"env": {"": "v"}}`, config{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseConfig(%q) err = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseConfig(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{``, `{"nice": 5, "env": {"K": "V"}}`, `{"nice": 20}`, `null`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := parseConfig(b)
		if err == nil && (c.Nice < 0 || c.Nice > 19) {
			t.Errorf("parseConfig(%q) = nice %d without an error", b, c.Nice)
		}
	})
}
