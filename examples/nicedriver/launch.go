package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"syscall"
)

// launchArg is the first argument of the driver binary re-executed as a
// task's launcher.
const launchArg = "launch-task"

// launchStatusFD is the launcher's file descriptor of its status pipe: it
// writes why it failed there, and the pipe closes without a word when the
// exec of the task succeeds.
const launchStatusFD = 3

// startLaunched starts cmd, a command that runs launch, and returns once the
// launcher has exec'd the task, or with the error that stopped it (e.g. the
// command does not exist).
func startLaunched(cmd *exec.Cmd) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd.ExtraFiles = []*os.File{w} // launchStatusFD
	err = cmd.Start()
	w.Close()
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(r) // EOF: the exec closed the launcher's end
	if len(msg) > 0 {
		_ = cmd.Wait()
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// launch is the driver binary re-executed as a task's first process, with
// args NICE PATH ARGV0 [ARG...]: it sets its nice level to NICE and execs
// PATH with ARGV0 ARG... and its environment. The task keeps the launcher's
// pid, process group, working directory, environment and output files, and
// runs at NICE from its first instruction, as does everything it forks.
// (Renicing the task after starting it would leave a window where it runs,
// and forks, at the driver's level.) It returns only on failure, with exit
// status 127, having said why on its status pipe.
func launch(args []string) int {
	status := os.NewFile(launchStatusFD, "launch-status")
	fail := func(format string, a ...any) int {
		if _, err := fmt.Fprintf(status, format, a...); err != nil {
			fmt.Fprintf(os.Stderr, format+"\n", a...) // run by hand
		}
		return 127
	}
	if len(args) < 3 {
		return fail("usage: %s %s NICE PATH ARGV0 [ARG...]", os.Args[0], launchArg)
	}
	syscall.CloseOnExec(launchStatusFD) // the task must not inherit it
	nice, err := strconv.Atoi(args[0])
	if err != nil {
		return fail("launch: nice %q: %v", args[0], err)
	}
	// A nice level belongs to a thread: set it and exec from the same one.
	runtime.LockOSThread()
	if err := syscall.Setpriority(syscall.PRIO_PROCESS, 0, nice); err != nil {
		return fail("launch: set nice %d: %v", nice, err)
	}
	err = syscall.Exec(args[1], args[2:], os.Environ())
	return fail("launch: exec %s: %v", args[1], err)
}
