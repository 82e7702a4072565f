// Command probe is the entrypoint of the container-mode tests: it reports
// what it sees (as JSON on stdout) from inside the task.
//
//	probe [-exists PATH]... [-write PATH]... [-read PATH]... [-stat PATH]... [-sleep] [-exit N]
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"os"
	"strings"
	"time"
)

type list []string

func (l *list) String() string     { return strings.Join(*l, ",") }
func (l *list) Set(s string) error { *l = append(*l, s); return nil }

// Report is what probe prints.
type Report struct {
	Pid, Ppid, UID, GID int
	Hostname, Cwd       string
	Status              map[string]string // CapBnd, CapEff, CapPrm, CapInh, CapAmb, NoNewPrivs
	ProcPids            []string
	Exists              map[string]bool
	Writes              map[string]string // "" or the error
	Reads               map[string]string // the content or the error
	Modes               map[string]string // os.FileMode's text or the error
}

func main() {
	var exists, writes, reads, stats list
	flag.Var(&exists, "exists", "")
	flag.Var(&writes, "write", "")
	flag.Var(&reads, "read", "")
	flag.Var(&stats, "stat", "")
	sleep := flag.Bool("sleep", false, "")
	exit := flag.Int("exit", 0, "")
	flag.Parse()
	if *sleep {
		os.Stdout.WriteString("sleeping\n")
		for {
			time.Sleep(time.Hour)
		}
	}
	r := Report{Pid: os.Getpid(), Ppid: os.Getppid(), UID: os.Getuid(), GID: os.Getgid(), Status: map[string]string{},
		Exists: map[string]bool{}, Writes: map[string]string{}, Reads: map[string]string{}, Modes: map[string]string{}}
	r.Hostname, _ = os.Hostname()
	r.Cwd, _ = os.Getwd()
	if f, err := os.Open("/proc/self/status"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			k, v, _ := strings.Cut(sc.Text(), ":")
			if strings.HasPrefix(k, "Cap") || k == "NoNewPrivs" {
				r.Status[k] = strings.TrimSpace(v)
			}
		}
		f.Close()
	}
	if es, err := os.ReadDir("/proc"); err == nil {
		for _, e := range es {
			if n := e.Name(); n[0] >= '0' && n[0] <= '9' {
				r.ProcPids = append(r.ProcPids, n)
			}
		}
	}
	for _, p := range exists {
		_, err := os.Lstat(p)
		r.Exists[p] = err == nil
	}
	for _, p := range writes {
		r.Writes[p] = ""
		if err := os.WriteFile(p, []byte("written\n"), 0o644); err != nil {
			r.Writes[p] = err.Error()
		}
	}
	for _, p := range reads {
		b, err := os.ReadFile(p)
		if err != nil {
			r.Reads[p] = "error: " + err.Error()
		} else {
			r.Reads[p] = string(b)
		}
	}
	for _, p := range stats {
		fi, err := os.Lstat(p)
		if err != nil {
			r.Modes[p] = "error: " + err.Error()
		} else {
			r.Modes[p] = fi.Mode().String()
		}
	}
	json.NewEncoder(os.Stdout).Encode(&r)
	os.Exit(*exit)
}
