package ctl

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"unicode/utf8"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/kclient"
	"github.com/dcos-kernel/dcos/sdk/transport"
	"github.com/dcos-kernel/dcos/syscalls/v1/syscallsv1connect"
)

// exitStatus is an error that ends dcosctl with its value as the exit code
// and no message: exec passes on its command's status, and an interrupted
// logs ends with 130 without a word.
type exitStatus int

func (s exitStatus) Error() string { return fmt.Sprintf("exit status %d", int(s)) }

// bidiKernel returns the typed client of t over HTTP/2 (h2c for http://),
// for bidirectional calls.
func (t target) bidiKernel() syscallsv1connect.KernelClient {
	opts := append([]connect.ClientOption{connect.WithInterceptors(kclient.Bearer(t.token))}, t.options()...)
	kernels, err := t.cluster()
	if err != nil {
		return syscallsv1connect.NewKernelClient(transport.H2CClientTLS(t.tls), t.baseURL, opts...) // fails every call
	}
	return syscallsv1connect.NewKernelClient(kernels.H2CClient(), kernels.URL(), opts...)
}

// Encodings of dataLine.Data.
const (
	encodingUTF8   = "utf8"
	encodingBase64 = "base64"
)

// dataLine is one chunk of a task's output in -o json (logs and exec), one
// JSON object per line: data is the chunk as text when it is valid UTF-8
// (encoding "utf8"), else base64 of its bytes (encoding "base64").
// Decoding each line's data by its encoding and concatenating them gives
// the stream's bytes exactly. Logs adds cursor and truncated.
type dataLine struct {
	Stream    string `json:"stream"`
	Data      string `json:"data"`
	Encoding  string `json:"encoding"`
	Cursor    string `json:"cursor,omitempty"`
	Truncated *bool  `json:"truncated,omitempty"`
}

// newDataLine encodes b for a dataLine of stream.
func newDataLine(stream string, b []byte) dataLine {
	if utf8.Valid(b) {
		return dataLine{Stream: stream, Data: string(b), Encoding: encodingUTF8}
	}
	return dataLine{Stream: stream, Data: base64.StdEncoding.EncodeToString(b), Encoding: encodingBase64}
}

// writeLine prints v as JSON on one line.
func writeLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}
