package plugintest_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/dcos-kernel/dcos/plugins/contract"
	pluginsv1 "github.com/dcos-kernel/dcos/plugins/contract/proto/v1"
	"github.com/dcos-kernel/dcos/sdk/plugin/plugintest"
)

// grpcServerEnv names the unix socket on which this test binary, re-executed,
// serves the minimal gRPC server of the benchmark's baseline.
const grpcServerEnv = "PLUGINTEST_BENCH_GRPC_SOCKET"

// BenchmarkRoundTrip measures a trivial call (Capabilities) through a real
// go-plugin process (AutoMTLS) next to plain gRPC (no TLS) over a unix socket
// to a minimal server, in the same run: in another process (this test binary
// re-executed; the like-for-like baseline) and in this process.
func BenchmarkRoundTrip(b *testing.B) {
	b.Run("go-plugin", func(b *testing.B) {
		d := plugintest.StartDriver(b, testDriver, plugintest.Options{})
		roundTrips(b, func(ctx context.Context) error { _, err := d.Capabilities(ctx); return err })
	})
	b.Run("grpc-unix-process", func(b *testing.B) {
		sock := filepath.Join(b.TempDir(), "grpc.sock")
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), grpcServerEnv+"="+sock)
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(sock); err == nil {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("baseline server did not listen within 10s")
			}
		}
		roundTrips(b, dialCapabilities(b, sock))
	})
	b.Run("grpc-unix-inproc", func(b *testing.B) {
		sock := filepath.Join(b.TempDir(), "grpc.sock")
		lis, err := net.Listen("unix", sock)
		if err != nil {
			b.Fatal(err)
		}
		srv := grpc.NewServer()
		pluginsv1.RegisterDriverServer(srv, capsServer{})
		go func() { _ = srv.Serve(lis) }()
		b.Cleanup(srv.Stop)
		roundTrips(b, dialCapabilities(b, sock))
	})
}

// serveBaseline serves the baseline gRPC server on sock until killed.
func serveBaseline(sock string) int {
	lis, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	srv := grpc.NewServer()
	pluginsv1.RegisterDriverServer(srv, capsServer{})
	if err := srv.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

func dialCapabilities(b *testing.B, sock string) func(context.Context) error {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	d := contract.NewDriverClient(context.Background(), conn)
	return func(ctx context.Context) error { _, err := d.Capabilities(ctx); return err }
}

// roundTrips times each call and reports p50 and p99 in µs.
func roundTrips(b *testing.B, call func(context.Context) error) {
	ctx := context.Background()
	for range 100 { // warm up connections and TLS
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
	}
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := call(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	pct := func(p float64) float64 {
		return float64(lat[int(float64(len(lat)-1)*p)].Nanoseconds()) / 1e3
	}
	b.ReportMetric(pct(0.50), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

type capsServer struct {
	pluginsv1.UnimplementedDriverServer
}

func (capsServer) Capabilities(context.Context, *pluginsv1.CapabilitiesRequest) (*pluginsv1.CapabilitiesResponse, error) {
	return &pluginsv1.CapabilitiesResponse{Capabilities: &pluginsv1.DriverCapabilities{SendSignals: true, FsIsolation: "none"}}, nil
}
