package ctl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
)

// Exit codes of Run.
const (
	exitOK          = 0
	exitCallError   = 1
	exitUsageError  = 2
	exitInterrupted = 130
)

// Run runs dcosctl with args (args[0] is the program name), reading request
// bodies from stdin and writing results to stdout and diagnostics to
// stderr. It returns the process exit code: 0 on success, 1 when a call
// failed (the kernel's code and message are printed), 2 on a usage error,
// 130 when ctx was cancelled during a call that is not a watch (cancelling
// a watch is its normal end and returns 0). exec returns its command's
// exit status instead (128+N when a signal N killed it). Run never panics
// out: an internal error is printed and returns 1. It is safe to call concurrently;
// every call builds its own command tree.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(ctx, args, &env{stdin: stdin, stdout: stdout, stderr: stderr, now: time.Now})
}

// env is what commands may touch of the outside world.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	now            func() time.Time
}

func run(ctx context.Context, args []string, e *env) (code int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintf(e.stderr, "dcosctl: internal error: %v\n", r)
			code = exitCallError
		}
	}()
	if len(args) == 0 {
		args = []string{"dcosctl"}
	}
	app := newApp(e)
	err := app.RunContext(ctx, normalizeArgs(app, args))
	var status exitStatus
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, new(usageError)), errors.As(err, new(cli.ExitCoder)):
		// dcosctl makes no cli.ExitCoder; urfave/cli's are usage errors
		// such as "No help topic for 'x'".
		fmt.Fprintf(e.stderr, "dcosctl: %v\n", err)
		return exitUsageError
	case ctx.Err() != nil:
		fmt.Fprintln(e.stderr, "dcosctl: interrupted")
		return exitInterrupted
	default:
		fmt.Fprintf(e.stderr, "dcosctl: %v\n", err)
		return exitCallError
	}
}

// usageError is a mistake in how dcosctl was called: exit code 2.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, a ...any) error {
	return usageError{fmt.Errorf(format, a...)}
}

// callError names the call that failed and the kernel's code and message.
func callError(op string, err error) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return fmt.Errorf("%s: %s: %s%s", op, codeName(ce.Code()), ce.Message(), tlsHint(ce.Message()))
	}
	return fmt.Errorf("%s: %w", op, err)
}

// codeName spells a code as the ABI does: invalid_argument → InvalidArgument.
func codeName(c connect.Code) string {
	var b strings.Builder
	for _, part := range strings.Split(c.String(), "_") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

const globalHelp = `Global options (--kernel, --token, --ca-cert, --config, --output/-o, --trace) may be
given before or after the command name; see "dcosctl --help".`

func newApp(e *env) *cli.App {
	app := &cli.App{
		Name:  "dcosctl",
		Usage: "the dcos command line: allocate, launch, watch, revoke, manage policies, and raw syscalls",
		Description: `Every command is a syscall client of a dcos kernel. The kernel address and
token come from --kernel/--token (or DCOS_KERNEL/DCOS_TOKEN), else from the
config file that "dcosd dev" writes (--config, DCOS_CONFIG, default
$XDG_CONFIG_HOME/dcos/config.json). Flags may follow positional arguments;
everything after "--" is taken literally.

Exit status: 0 on success, 1 when a call fails (the kernel's code and
message are printed), 2 on a usage error, 130 when interrupted; exec exits
with its command's status.`,
		Reader:                    e.stdin,
		Writer:                    e.stdout,
		ErrWriter:                 e.stderr,
		HideVersion:               true,
		DisableSliceFlagSeparator: true,
		Flags:                     globalFlags(),
		Commands: []*cli.Command{
			agentsCommand(e),
			agentCommand(e),
			kernelsCommand(e),
			allocsCommand(e),
			psCommand(e),
			topCommand(e),
			usageCommand(e),
			allocCommand(e),
			launchCommand(e),
			runCommand(e),
			revokeCommand(e),
			watchCommand(e),
			logsCommand(e),
			execCommand(e),
			policyCommand(e),
			roleCommand(e),
			pluginCommand(e),
			volumeCommand(e),
			imageCommand(e),
			svcCommand(e),
			jobCommand(e),
			syscallCommand(e),
			tokenCommand(e),
			certCommand(e),
			caCommand(e),
			loginCommand(e),
			auditCommand(e),
		},
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
		Action: func(c *cli.Context) error {
			if c.Args().Present() {
				return usagef("unknown command %q; see \"dcosctl --help\"", c.Args().First())
			}
			return cli.ShowAppHelp(c)
		},
	}
	finishCommands(app.Commands)
	return app
}

// finishCommands gives every command and subcommand dcosctl's usage errors
// and the note on global options.
func finishCommands(cmds []*cli.Command) {
	for _, cmd := range cmds {
		cmd.OnUsageError = onUsageError
		cmd.Description = strings.TrimSpace(cmd.Description + "\n\n" + globalHelp)
		finishCommands(cmd.Subcommands)
	}
}

func onUsageError(c *cli.Context, err error, _ bool) error {
	help := "dcosctl --help"
	if c.Command != nil && c.Command.Name != "" && c.Command.Name != c.App.Name {
		// HelpName is the command's path, e.g. "dcosctl policy load".
		name := c.Command.HelpName
		if name == "" {
			name = "dcosctl " + c.Command.Name
		}
		help = name + " --help"
	}
	return usageError{fmt.Errorf("%w; see %q", err, help)}
}

// globalFlags are the flags every command understands.
func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "kernel", Usage: "kernel `URL`, e.g. https://127.0.0.1:7070 (https:// is added when missing)", EnvVars: []string{"DCOS_KERNEL"}},
		&cli.StringFlag{Name: "ca-cert", Usage: "the cluster's CA bundle `FILE` the kernels' certificates are verified with (default: the client config's, pinned by dcosctl login or written by dcosd dev)", EnvVars: []string{"DCOS_CA_FILE"}},
		&cli.StringFlag{Name: "token", Usage: "bearer `TOKEN` sent with every call", EnvVars: []string{"DCOS_TOKEN"}},
		&cli.StringFlag{Name: "config", Usage: "client config `PATH` (written by \"dcosd dev\"); --kernel and --token override it", EnvVars: []string{"DCOS_CONFIG"}, DefaultText: "$XDG_CONFIG_HOME/dcos/config.json"},
		&cli.StringFlag{Name: "output", Aliases: []string{"o"}, Usage: "output `FORMAT`: table or json", Value: "table"},
		&cli.BoolFlag{Name: "trace", Usage: "print every syscall to stderr, strace-style: Name({request}) = Code <duration>", DisableDefaultText: true},
	}
}

// normalizeArgs lets flags follow positional arguments: within a command's
// arguments (up to "--"), flags are moved before the positionals, and global
// flags the command does not define are moved before the command name. A
// command with subcommands ("policy load") is taken as a whole: the words
// naming it stay in front, and its arguments are those after the last one.
// Known flags are spelled with their first name (-o becomes --output). The
// standard flag parser urfave/cli uses would otherwise stop at the first
// positional.
func normalizeArgs(app *cli.App, args []string) []string {
	global := flagIndex(app.Flags)
	head := []string{args[0]}
	rest := args[1:]
	for len(rest) > 0 {
		a := rest[0]
		if a == "--" || !isFlagArg(a) {
			break
		}
		n := flagArgLen(global, rest)
		head = append(head, canonical(global, rest[0]))
		head = append(head, rest[1:n]...)
		rest = rest[n:]
	}
	if len(rest) == 0 || rest[0] == "--" {
		return append(head, rest...)
	}
	cmd := app.Command(rest[0])
	if cmd == nil {
		return append(head, rest...)
	}
	path := []string{rest[0]}
	tail := rest[1:]
	for len(cmd.Subcommands) > 0 {
		// Global flags between the words of the path move to the front.
		parent := flagIndex(cmd.Flags)
		for len(tail) > 0 && tail[0] != "--" && isFlagArg(tail[0]) {
			name := flagName(tail[0])
			if _, ok := parent[name]; ok {
				break
			}
			if _, ok := global[name]; !ok {
				break
			}
			n := flagArgLen(global, tail)
			head = append(head, canonical(global, tail[0]))
			head = append(head, tail[1:n]...)
			tail = tail[n:]
		}
		if len(tail) == 0 {
			break
		}
		sub := cmd.Command(tail[0])
		if sub == nil {
			break
		}
		path = append(path, tail[0])
		cmd, tail = sub, tail[1:]
	}
	local := flagIndex(cmd.Flags)
	var cmdFlags, pos []string
	for i := 0; i < len(tail); {
		a := tail[i]
		if a == "--" {
			pos = append(pos, tail[i+1:]...)
			break
		}
		if !isFlagArg(a) {
			pos = append(pos, a)
			i++
			continue
		}
		name := flagName(a)
		if _, ok := local[name]; !ok {
			if _, ok := global[name]; ok {
				n := flagArgLen(global, tail[i:])
				head = append(head, canonical(global, a))
				head = append(head, tail[i+1:i+n]...)
				i += n
				continue
			}
		}
		n := flagArgLen(local, tail[i:])
		cmdFlags = append(cmdFlags, canonical(local, a))
		cmdFlags = append(cmdFlags, tail[i+1:i+n]...)
		i += n
	}
	out := append(head, path...)
	out = append(out, cmdFlags...)
	out = append(out, "--")
	return append(out, pos...)
}

func isFlagArg(a string) bool { return len(a) > 1 && a[0] == '-' }

func flagName(a string) string {
	name := strings.TrimLeft(a, "-")
	name, _, _ = strings.Cut(name, "=")
	return name
}

// flagArgLen is how many arguments the flag at args[0] consumes: 2 when it
// takes a value given as the next argument, else 1.
func flagArgLen(index map[string]flagInfo, args []string) int {
	if f, ok := index[flagName(args[0])]; ok && f.takesValue &&
		!strings.Contains(args[0], "=") && len(args) > 1 {
		return 2
	}
	return 1
}

// canonical spells a flag argument with the flag's first name: urfave/cli
// refuses a repeatable flag given under two of its names (-e and --env).
func canonical(index map[string]flagInfo, arg string) string {
	f, ok := index[flagName(arg)]
	if !ok {
		return arg
	}
	if _, value, hasValue := strings.Cut(arg, "="); hasValue {
		return "--" + f.name + "=" + value
	}
	return "--" + f.name
}

type flagInfo struct {
	name       string // the flag's first name
	takesValue bool
}

// flagIndex maps every name and alias of flags to the flag.
func flagIndex(flags []cli.Flag) map[string]flagInfo {
	idx := map[string]flagInfo{}
	for _, f := range flags {
		takes := true
		if v, ok := f.(cli.DocGenerationFlag); ok {
			takes = v.TakesValue()
		}
		for _, n := range f.Names() {
			idx[n] = flagInfo{name: f.Names()[0], takesValue: takes}
		}
	}
	return idx
}
