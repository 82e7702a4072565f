package daemon

import (
	"context"
	"crypto/ecdsa"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"connectrpc.com/connect"

	"github.com/dcos-kernel/dcos/internal/atomicfile"
	pb "github.com/dcos-kernel/dcos/syscalls/v1"
)

// agentTokenFile is where an agent keeps the token AgentJoin gave it, in
// its data dir.
const agentTokenFile = "agent-token"

// agentToken returns the token an agent calls the kernel with: the one
// saved in dataDir by an earlier join (it wins over given); else, when
// given is an agent join token, a token of the agent's own, obtained by
// AgentJoin for hostname and saved in dataDir (mode 0600) before it is
// returned; else given as it is (an ordinary agent token: the kernel
// refuses AgentJoin to it). With ac, calls go over its TLS, and a join
// also asks for the agent's certificate (AgentJoinRequest.csr), which ac
// installs; the caller gets one by CertRenew (agentCert.ensure) when the
// token came otherwise. It retries while the kernel is unreachable or
// busy, until ctx ends.
func agentToken(ctx context.Context, log *slog.Logger, kernelURL, given, dataDir, hostname string, ac *agentCert) (string, error) {
	path := filepath.Join(dataDir, agentTokenFile)
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if tok := strings.TrimSpace(string(b)); tok != "" {
			return tok, nil
		}
		return "", fmt.Errorf("agent token: %s is empty (remove it to join again)", path)
	case !errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("agent token: %w", err)
	}
	if given == "" {
		return "", fmt.Errorf("agent token: --token is required (no token saved in %s yet)", path)
	}
	if hostname == "" {
		if hostname, err = os.Hostname(); err != nil {
			return "", fmt.Errorf("agent join: hostname: %w", err)
		}
	}
	hostname = joinHostname(hostname)
	k, done := ac.client(kernelURL, given)
	defer done()
	req := &pb.AgentJoinRequest{Hostname: hostname}
	var key *ecdsa.PrivateKey
	if ac != nil {
		if key, req.Csr, err = ac.request(); err != nil {
			return "", fmt.Errorf("agent join: %w", err)
		}
	}
	backoff := 100 * time.Millisecond
	for {
		res, err := k.AgentJoin(ctx, connect.NewRequest(req))
		switch connect.CodeOf(err) {
		case connect.CodePermissionDenied:
			// Not a join token: the kernel checks it as an agent's.
			return given, nil
		case connect.CodeUnavailable, connect.CodeResourceExhausted, connect.CodeDeadlineExceeded:
			log.Warn("agent join: kernel not ready; retrying", "err", err, "in", backoff)
			select {
			case <-ctx.Done():
				return "", fmt.Errorf("agent join: %w", ctx.Err())
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
			continue
		}
		if err != nil {
			return "", fmt.Errorf("agent join: %w", err)
		}
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			return "", fmt.Errorf("agent join: %w", err)
		}
		if err := atomicfile.WriteDurable(path, []byte(res.Msg.GetToken()+"\n")); err != nil {
			return "", fmt.Errorf("agent join: save token: %w", err)
		}
		if ac != nil && len(res.Msg.GetCertificate()) > 0 {
			if err := ac.install(key, res.Msg.GetCertificate(), res.Msg.GetCaBundle()); err != nil {
				return "", fmt.Errorf("agent join: %w", err)
			}
		}
		log.Info("agent joined: own token saved", "name", res.Msg.GetInfo().GetName(), "id", res.Msg.GetInfo().GetId(), "path", path)
		return res.Msg.GetToken(), nil
	}
}

// joinHostname makes hostname one the kernel accepts: lowercase, with
// every character other than a letter, digit, '-' or '.' replaced by '-'.
func joinHostname(hostname string) string {
	h := strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '-'
	}, hostname)
	return strings.Trim(h, "-.")
}
