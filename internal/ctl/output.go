package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/dcos-kernel/dcos/internal/quantity"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
)

// format is how results are printed.
type format int

const (
	formatTable format = iota
	formatJSON
)

func outputFormat(c *cli.Context) (format, error) {
	switch o := c.String("output"); o {
	case "table", "":
		return formatTable, nil
	case "json":
		return formatJSON, nil
	default:
		return 0, usagef("--output: %q is not a format (table or json)", o)
	}
}

// marshalCompact renders m as protojson on one line. protojson output is
// deliberately unstable in its whitespace; compacting makes it stable.
func marshalCompact(m proto.Message) ([]byte, error) {
	b, err := protojson.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return nil, fmt.Errorf("encode %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return buf.Bytes(), nil
}

// writeJSON prints m as indented protojson (fields left unset are omitted).
func writeJSON(w io.Writer, m proto.Message) error {
	b, err := marshalCompact(m)
	if err != nil {
		return err
	}
	return writeIndented(w, b)
}

func writeIndented(w io.Writer, b []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// writeJSONLine prints m as protojson on one line.
func writeJSONLine(w io.Writer, m proto.Message) error {
	b, err := marshalCompact(m)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeJSONObject prints an object whose members are messages, e.g.
// {"allocation": {...}, "task": {...}}.
func writeJSONObject(w io.Writer, members map[string]proto.Message) error {
	obj := map[string]json.RawMessage{}
	for k, m := range members {
		b, err := marshalCompact(m)
		if err != nil {
			return err
		}
		obj[k] = b
	}
	b, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	return writeIndented(w, b)
}

// table is a tab-aligned table; Flush prints it.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) *table {
	t := &table{tw: tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t *table) row(cells ...string) {
	for i, c := range cells {
		if c == "" {
			cells[i] = "-"
		}
	}
	fmt.Fprintln(t.tw, strings.Join(cells, "\t"))
}

func (t *table) flush() error { return t.tw.Flush() }

// enumName is an enum value's name without its type prefix:
// TASK_STATE_RUNNING → RUNNING.
func enumName(name, prefix string) string {
	return strings.TrimPrefix(name, prefix)
}

func allocState(s syscallsv1.AllocationState) string {
	return enumName(s.String(), "ALLOCATION_STATE_")
}

func taskState(s syscallsv1.TaskState) string { return enumName(s.String(), "TASK_STATE_") }

func agentState(s syscallsv1.AgentState) string { return enumName(s.String(), "AGENT_STATE_") }

func eventKind(k syscallsv1.EventKind) string {
	return strings.ToLower(enumName(k.String(), "EVENT_KIND_"))
}

func formatCPUs(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

// usedOf prints "used/total".
func usedOf(used, total string) string { return used + "/" + total }

func formatLabels(labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + labels[k]
	}
	return strings.Join(parts, ",")
}

func formatMem(r *syscallsv1.Resources) string {
	return quantity.FormatBytes(r.GetMemBytes())
}

// formatAge prints how long ago ts was, kubectl style: 42s, 5m, 3h, 2d.
func formatAge(now time.Time, ts *timestamppb.Timestamp) string {
	if ts == nil {
		return ""
	}
	d := max(now.Sub(ts.AsTime()), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd", int(d.Hours()/24))
	}
}

// oneLine keeps a kernel message on one row or line: runs of white space,
// newlines included, become one space.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// formatCommand prints a command line, quoting words that need it.
func formatCommand(cmd string, args []string) string {
	words := append([]string{cmd}, args...)
	for i, w := range words {
		if w == "" || strings.ContainsAny(w, " \t\n\"'\\$") {
			words[i] = strconv.Quote(w)
		}
	}
	return strings.Join(words, " ")
}

// formatPorts shows a task's ports as NAME:HOST->PORT, with /udp for udp
// (PORT is the port the task listens on; HOST "?" until known).
func formatPorts(ps []*syscallsv1.PortMapping) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		host := "?"
		if p.GetHostPort() != 0 {
			host = strconv.Itoa(int(p.GetHostPort()))
		}
		parts[i] = fmt.Sprintf("%s:%s->%d", p.GetName(), host, p.GetContainerPort())
		if p.GetProtocol() == "udp" {
			parts[i] += "/udp"
		}
	}
	return strings.Join(parts, ",")
}

// formatHostPorts lists the host ports reserved for an allocation, or how
// many it asks for while pending.
func formatHostPorts(a *syscallsv1.Allocation) string {
	if hp := a.GetHostPorts(); len(hp) > 0 {
		parts := make([]string, len(hp))
		for i, p := range hp {
			parts[i] = strconv.Itoa(int(p))
		}
		return strings.Join(parts, ",")
	}
	if n := a.GetResources().GetPorts(); n > 0 {
		return fmt.Sprintf("(%d)", n)
	}
	return ""
}
