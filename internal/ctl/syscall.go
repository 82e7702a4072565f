package ctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"connectrpc.com/connect"
	"github.com/urfave/cli/v2"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/dcos-kernel/dcos/internal/kclient"
	syscallsv1 "github.com/dcos-kernel/dcos/syscalls/v1"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// Importing syscallsv1 registers the ABI's descriptors; the syscall table
// is read from the registry by service name, so it follows the .proto.
var _ = syscallsv1.File_v1_syscalls_proto

func syscallCommand(e *env) *cli.Command {
	return &cli.Command{
		Name:      "syscall",
		Usage:     "make a raw syscall, or list the syscall table",
		ArgsUsage: "NAME [JSON | -]",
		Description: `With --list, print the syscall table: each method of the Kernel service with
its number (1-based position in the service), request and response messages,
and how it streams: no, server (the kernel streams the response) or bidi
(both sides stream; needs HTTP/2). The table is read from the ABI's
protobuf descriptor, so it is always the one this dcosctl was built with.

Otherwise call the syscall NAME (case-insensitive: allocate, Allocate). The
request is the protobuf JSON of its request message: the JSON argument, stdin
when the argument is "-", or {} when absent. Malformed JSON is rejected before
anything is sent. The response is printed as protobuf JSON; a streaming call
(Watch, Logs) prints one message per line until the stream ends or is
interrupted. A bidirectional call (Exec) sends the one request message,
closes its side, and prints each response as a line (over h2c for http://).

  dcosctl syscall --list
  dcosctl syscall allocate '{"resources":{"cpus":0.5,"memBytes":"67108864"}}'
  echo '{"afterRevision":"0"}' | dcosctl syscall watch - --trace
  dcosctl syscall exec '{"start":{"taskId":"t-1","command":"hostname"}}'`,
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "list", Aliases: []string{"l"}, Usage: "print the syscall table (table or -o json)", DisableDefaultText: true},
		},
		Action: func(c *cli.Context) error {
			if c.Bool("list") {
				if c.Args().Present() {
					return usagef("syscall --list takes no arguments")
				}
				return listSyscalls(c, e)
			}
			return rawSyscall(c, e)
		},
	}
}

// kernelService is the Kernel service descriptor of the ABI.
func kernelService() (protoreflect.ServiceDescriptor, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(syscallsv1connect.KernelName)
	if err != nil {
		return nil, fmt.Errorf("syscall table: %w", err)
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return nil, fmt.Errorf("syscall table: %s is not a service", syscallsv1connect.KernelName)
	}
	return sd, nil
}

// syscallEntry is one row of the syscall table.
type syscallEntry struct {
	Number    int    `json:"number"`
	Name      string `json:"name"`
	Procedure string `json:"procedure"`
	Request   string `json:"request"`
	Response  string `json:"response"`
	Streaming bool   `json:"streaming"`
	// Stream is how the call streams: "no", "server", "client" or "bidi".
	Stream string `json:"stream"`
}

func syscallTable(sd protoreflect.ServiceDescriptor) []syscallEntry {
	methods := sd.Methods()
	out := make([]syscallEntry, methods.Len())
	for i := range out {
		md := methods.Get(i)
		out[i] = syscallEntry{
			Number:    i + 1,
			Name:      string(md.Name()),
			Procedure: procedure(md),
			Request:   string(md.Input().FullName()),
			Response:  string(md.Output().FullName()),
			Streaming: md.IsStreamingServer() || md.IsStreamingClient(),
			Stream:    streamKind(md),
		}
	}
	return out
}

// streamKind is how md streams: "no", "server", "client" or "bidi".
func streamKind(md protoreflect.MethodDescriptor) string {
	switch {
	case md.IsStreamingClient() && md.IsStreamingServer():
		return "bidi"
	case md.IsStreamingClient():
		return "client"
	case md.IsStreamingServer():
		return "server"
	}
	return "no"
}

func procedure(md protoreflect.MethodDescriptor) string {
	return "/" + string(md.Parent().FullName()) + "/" + string(md.Name())
}

func listSyscalls(c *cli.Context, e *env) error {
	f, err := outputFormat(c)
	if err != nil {
		return err
	}
	sd, err := kernelService()
	if err != nil {
		return err
	}
	entries := syscallTable(sd)
	if f == formatJSON {
		b, err := json.Marshal(entries)
		if err != nil {
			return err
		}
		return writeIndented(e.stdout, b)
	}
	t := newTable(e.stdout, "NR", "NAME", "REQUEST", "RESPONSE", "STREAM")
	for _, s := range entries {
		t.row(strconv.Itoa(s.Number), s.Name, shortName(s.Request), shortName(s.Response), s.Stream)
	}
	return t.flush()
}

func shortName(full string) string { return full[strings.LastIndex(full, ".")+1:] }

// findSyscall finds a method of sd by name, ignoring case.
func findSyscall(sd protoreflect.ServiceDescriptor, name string) (protoreflect.MethodDescriptor, error) {
	methods := sd.Methods()
	names := make([]string, methods.Len())
	for i := range methods.Len() {
		md := methods.Get(i)
		if strings.EqualFold(string(md.Name()), name) {
			return md, nil
		}
		names[i] = strings.ToLower(string(md.Name()))
	}
	return nil, usagef("unknown syscall %q; known: %s (see \"dcosctl syscall --list\")", name, strings.Join(names, ", "))
}

func rawSyscall(c *cli.Context, e *env) error {
	args := c.Args().Slice()
	if len(args) == 0 {
		return usagef("syscall: want NAME [JSON | -], or --list")
	}
	if len(args) > 2 {
		return usagef("syscall: want NAME [JSON | -], got %d arguments (quote the JSON)", len(args))
	}
	sd, err := kernelService()
	if err != nil {
		return err
	}
	md, err := findSyscall(sd, args[0])
	if err != nil {
		return err
	}
	body := []byte("{}")
	if len(args) == 2 {
		body = []byte(args[1])
		if args[1] == "-" {
			if body, err = io.ReadAll(e.stdin); err != nil {
				return fmt.Errorf("syscall %s: read request from stdin: %w", md.Name(), err)
			}
		}
	}
	req := dynamicpb.NewMessage(md.Input())
	if err := protojson.Unmarshal(body, req); err != nil {
		return usagef("syscall %s: request is not a valid %s: %v", md.Name(), md.Input().FullName(), err)
	}
	t, err := resolveTarget(c, e)
	if err != nil {
		return err
	}
	if _, err := outputFormat(c); err != nil {
		return err
	}
	return callDynamic(c.Context, t, md, req, e.stdout)
}

// callDynamic calls md with req through a client built from the descriptor
// alone, and prints the response (or each streamed message) as JSON.
func callDynamic(ctx context.Context, t target, md protoreflect.MethodDescriptor, req *dynamicpb.Message, w io.Writer) error {
	if md.IsStreamingClient() && !md.IsStreamingServer() {
		return usagef("syscall %s: client-streaming calls are not supported by dcosctl", md.Name())
	}
	output := md.Output()
	opts := append([]connect.ClientOption{
		connect.WithSchema(md),
		connect.WithInterceptors(kclient.Bearer(t.token)),
		connect.WithResponseInitializer(func(_ connect.Spec, msg any) error {
			m, ok := msg.(*dynamicpb.Message)
			if !ok {
				return fmt.Errorf("syscall %s: unexpected response type %T", md.Name(), msg)
			}
			*m = *dynamicpb.NewMessage(output)
			return nil
		}),
	}, t.options()...)
	kernels, err := t.cluster()
	if err != nil {
		return err
	}
	httpClient := kernels.HTTPClient()
	if md.IsStreamingClient() {
		httpClient = kernels.H2CClient() // a bidi call needs HTTP/2
	}
	client := connect.NewClient[dynamicpb.Message, dynamicpb.Message](httpClient, kernels.URL()+procedure(md), opts...)
	op := string(md.Name())
	if md.IsStreamingClient() {
		return callBidiOnce(ctx, op, client, req, w)
	}
	if !md.IsStreamingServer() {
		res, err := client.CallUnary(ctx, connect.NewRequest(req))
		if err != nil {
			return callError(op, err)
		}
		return writeJSON(w, res.Msg)
	}
	stream, err := client.CallServerStream(ctx, connect.NewRequest(req))
	if err != nil {
		return callError(op, err)
	}
	defer stream.Close()
	for stream.Receive() {
		if err := writeJSONLine(w, stream.Msg()); err != nil {
			return err
		}
	}
	return streamEnd(ctx, op, stream.Err())
}

// callBidiOnce makes a bidirectional call that sends req alone, closes its
// side of the stream, and prints each response as a JSON line.
func callBidiOnce(ctx context.Context, op string, client *connect.Client[dynamicpb.Message, dynamicpb.Message], req *dynamicpb.Message, w io.Writer) error {
	stream := client.CallBidiStream(ctx)
	defer stream.CloseResponse()
	// io.EOF from Send means the server has ended the call: Receive says why.
	if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
		return callError(op, err)
	}
	if err := stream.CloseRequest(); err != nil {
		return callError(op, err)
	}
	for {
		msg, err := stream.Receive()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return streamEnd(ctx, op, err)
		}
		if err := writeJSONLine(w, msg); err != nil {
			return err
		}
	}
}

// streamEnd maps the end of a stream to the command's result: the server
// closing it, or the user interrupting it, is a normal end.
func streamEnd(ctx context.Context, op string, err error) error {
	if err == nil || ctx.Err() != nil && (errors.Is(err, context.Canceled) || connect.CodeOf(err) == connect.CodeCanceled) {
		return nil
	}
	return callError(op, err)
}
