package contract

import (
	"errors"
	"io"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
)

// maxExecChunk bounds the bytes of one ExecTask message (stdin, stdout or
// stderr).
const maxExecChunk = 32 << 10

// ExecTask serves ExecDriver.ExecTask: Unimplemented unless the
// implementation is an ExecDriver. The call's end (the host cancelled)
// ends the context the implementation runs under, which kills the
// command.
func (s *driverServer) ExecTask(stream grpc.BidiStreamingServer[pluginsv1.ExecTaskInput, pluginsv1.ExecTaskOutput]) error {
	ed, ok := s.impl.(ExecDriver)
	if !ok {
		return status.Error(codes.Unimplemented, "exec task: the driver cannot exec")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	st := first.GetStart()
	if st == nil {
		return status.Error(codes.InvalidArgument, "exec task: the first input has no start")
	}
	opts := execOptionsFromProto(st)
	ctx := stream.Context()

	var smu sync.Mutex // Send is not safe for concurrent use
	send := func(o *pluginsv1.ExecTaskOutput) error {
		smu.Lock()
		defer smu.Unlock()
		return stream.Send(o)
	}
	eio := ExecIO{
		Stdout: &chunkWriter{send: func(p []byte) error { return send(&pluginsv1.ExecTaskOutput{Stdout: p}) }},
		Stderr: &chunkWriter{send: func(p []byte) error { return send(&pluginsv1.ExecTaskOutput{Stderr: p}) }},
	}
	pr, pw := io.Pipe()
	defer pr.CloseWithError(errors.New("exec ended"))
	if opts.Stdin {
		eio.Stdin = pr
	}
	resize := make(chan TermSize, 4)
	eio.Resize = resize
	// Inputs until the host closes its side: stdin (through a pipe: the
	// command's pace is the host's), EOF, resizes.
	go func() {
		defer pw.Close()
		for {
			in, err := stream.Recv()
			if err != nil {
				return // EOF (the host closed its side) or the call ended
			}
			if b := in.GetStdin(); len(b) > 0 && opts.Stdin {
				if _, err := pw.Write(b); err != nil {
					return
				}
			}
			if in.GetStdinEof() {
				pw.Close()
			}
			if r := in.GetResize(); r != nil {
				select {
				case resize <- TermSize{Rows: clamp16(r.GetRows()), Cols: clamp16(r.GetCols())}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	res, err := ed.ExecTask(ctx, opts, eio)
	if err != nil {
		return toStatus(err)
	}
	return send(&pluginsv1.ExecTaskOutput{Exit: exitToProto(res)})
}

// chunkWriter sends what is written in messages of at most maxExecChunk
// bytes. The slice sent is copied by the marshalling before send returns.
type chunkWriter struct {
	send func([]byte) error
}

func (w *chunkWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), maxExecChunk)
		if err := w.send(p[:k]); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

func clamp16(v uint32) uint16 { return uint16(min(v, 0xffff)) }

func execOptionsToProto(o *ExecOptions) *pluginsv1.ExecTaskStart {
	return &pluginsv1.ExecTaskStart{TaskId: o.TaskID, Command: o.Command, Args: o.Args, Env: o.Env, Tty: o.TTY,
		Size: &pluginsv1.TermSize{Rows: uint32(o.Size.Rows), Cols: uint32(o.Size.Cols)}, Stdin: o.Stdin}
}

func execOptionsFromProto(s *pluginsv1.ExecTaskStart) *ExecOptions {
	return &ExecOptions{TaskID: s.GetTaskId(), Command: s.GetCommand(), Args: s.GetArgs(), Env: s.GetEnv(), TTY: s.GetTty(),
		Size: TermSize{Rows: clamp16(s.GetSize().GetRows()), Cols: clamp16(s.GetSize().GetCols())}, Stdin: s.GetStdin()}
}
