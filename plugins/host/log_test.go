package host

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	hclog "github.com/hashicorp/go-hclog"
)

func TestHclogAdapter_Log(t *testing.T) {
	var buf bytes.Buffer
	l := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})).With("plugin", "driver/x")
	var exits []string
	a := hclog.Logger(&hclogAdapter{l: l, onExit: func(how string) { exits = append(exits, how) }})
	a = a.Named("stdio").With("k", "v")

	a.Trace("dropped below debug")
	a.Debug("d")
	a.Info("i", "n", 1)
	a.Warn("w")
	a.Error("plugin process exited", "plugin", "/p/dcos-driver-x", "error", "exit status 3")
	a.Log(hclog.Off, "off")

	var got []string
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if r["plugin"] != "driver/x" || r["k"] != "v" {
			t.Errorf("record %v: want plugin=driver/x and k=v", r)
		}
		got = append(got, r["level"].(string)+" "+r["msg"].(string))
	}
	want := []string{"DEBUG d", "INFO i", "WARN w", "ERROR plugin process exited"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("records = %q, want %q", got, want)
	}
	if !strings.Contains(buf.String(), `"cmd":"/p/dcos-driver-x"`) {
		t.Errorf("go-plugin's plugin key is not renamed to cmd: %s", buf.String())
	}
	if len(exits) != 1 || exits[0] != "exit status 3" {
		t.Errorf("onExit calls = %q", exits)
	}
	if a.GetLevel() != hclog.Debug || a.IsTrace() || !a.IsDebug() {
		t.Errorf("GetLevel = %v, IsTrace %v, IsDebug %v; want the handler's level, debug", a.GetLevel(), a.IsTrace(), a.IsDebug())
	}
}

func TestLineWriter(t *testing.T) {
	var lines []string
	w := &lineWriter{log: func(l string) { lines = append(lines, l) }}
	for _, s := range []string{"a\nb", "c\r\n\n", "d"} {
		w.Write([]byte(s))
	}
	w.Flush()
	if got := strings.Join(lines, "|"); got != "a|bc|d" {
		t.Errorf("lines = %q, want a|bc|d", got)
	}
}
