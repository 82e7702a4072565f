package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"

	"github.com/urfave/cli/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/dcos-kernel/dcos/internal/api"
	"github.com/dcos-kernel/dcos/internal/tokenstore"
	"github.com/dcos-kernel/dcos/kernel"
)

// loadKernelTokens reads the kernel's tokens file: --tokens, which must
// exist when given, else DATA_DIR/tokens.json, which may be missing (the
// cluster's tokens are then all in its store).
func loadKernelTokens(c *cli.Context, dataDir string) (api.TokensFile, error) {
	tf, err := api.LoadTokensFile(tokensPath(c, dataDir))
	if err != nil && errors.Is(err, fs.ErrNotExist) && !c.IsSet("tokens") {
		return api.TokensFile{}, nil
	}
	if err != nil {
		return tf, fmt.Errorf("%w (--tokens names a file that must exist; without --tokens the kernel uses the cluster's stored tokens)", err)
	}
	return tf, nil
}

// kernelTokens are a kernel's token sources: its tokens file, the
// cluster's token store and the registry following it.
type kernelTokens struct {
	file     *api.Tokens
	store    *tokenstore.Store
	registry *tokenstore.Registry
}

// config returns the API's token settings.
func (t *kernelTokens) config(cfg api.Config) api.Config {
	cfg.Tokens = api.TokenChain{t.file, t.registry}
	cfg.TokenStore = t.store
	cfg.FileTokens = t.file
	return cfg
}

// Close stops following the store.
func (t *kernelTokens) Close() { t.registry.Close() }

// startTokens starts the kernel's registry of the tokens under prefix in
// cli and, unless the tokens file gives an operator token, bootstraps a
// cluster never bootstrapped: it creates an operator token and an agent
// join token (exactly once per cluster, whatever the number of kernels
// starting at once) and prints how to use them to out, with apiURL (the
// kernel's advertised URL) as its address.
func startTokens(ctx context.Context, log *slog.Logger, out io.Writer, cli3 *clientv3.Client, prefix string, file *api.Tokens, apiURL, caFingerprint string) (*kernelTokens, error) {
	s := tokenstore.New(cli3, prefix)
	hasOperator := false
	for _, info := range file.Infos() {
		hasOperator = hasOperator || info.GetRole() == kernel.RoleOperator.String()
	}
	if !hasOperator {
		b, ok, err := s.Bootstrap(ctx)
		if err != nil {
			return nil, err
		}
		if ok {
			printBootstrap(out, apiURL, caFingerprint, b)
			log.Info("cluster bootstrapped: operator and agent join tokens created (printed on stdout, once)")
		}
	}
	r, err := tokenstore.StartRegistry(ctx, s, log.With("component", "tokens"))
	if err != nil {
		return nil, err
	}
	return &kernelTokens{file: file, store: s, registry: r}, nil
}

// printBootstrap prints the bootstrap tokens the way kubeadm init does:
// the commands that use them, ready to paste, with the CA fingerprint
// (sha256:HEX) that pins the cluster's CA (kubeadm's
// --discovery-token-ca-cert-hash).
func printBootstrap(out io.Writer, apiURL, caFingerprint string, b tokenstore.Bootstrapped) {
	fmt.Fprintf(out, `dcos: this cluster is new; its first tokens follow, shown this once (keep them secret).

To log in as the operator %q (writes the dcosctl client config, pinning the cluster's CA):

  dcosctl login %s --token %s --ca-fingerprint %s

To join an agent (it trades the join token for a token and a certificate of its own, saved in its data dir):

  dcosd agent --kernel %s --token %s --ca-fingerprint %s

Create more with "dcosctl token create", revoke with "dcosctl token revoke" (docs/operations.md).
`, b.OperatorInfo.GetName(), apiURL, b.Operator, caFingerprint, apiURL, b.Join, caFingerprint)
}
