package daemon

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/dcos-kernel/dcos/drivers/oci"
	"github.com/dcos-kernel/dcos/plugins/contract"
	"github.com/dcos-kernel/dcos/plugins/host"
)

// builtinImage is the built-in image driver; it runs in a process of its
// own (group "oci"), so that a crash while unpacking an image never takes
// the exec driver or the isolator down with it.
const builtinImage = "oci"

var imageFlags = []cli.Flag{
	&cli.StringFlag{Name: "image-driver", Value: "none", Usage: "task driver for container images (dcosctl run --image): oci or none (oci needs root; dcosd dev as root defaults to oci)"},
	&cli.StringSliceFlag{Name: "insecure-registry", Usage: "a registry HOST[:PORT] the oci driver may pull from over plain HTTP (loopback registries always may; repeatable)"},
	&cli.StringFlag{Name: "registry-auth", Usage: "credentials of registries, in Docker's config.json format ({\"auths\": {\"HOST\": {\"auth\": base64(USER:PASS)} or {\"registrytoken\": TOKEN}}})"},
	&cli.DurationFlag{Name: "image-gc-delay", Value: oci.DefaultGCDelay, Usage: "how long an image no task uses stays cached on the agent (negative: until `dcosctl image rm`)"},
}

// imageBuiltin returns the built-in oci driver's plugin for the agent's
// host, or nil (with the reason logged) when image tasks are off.
func imageBuiltin(c *cli.Context, log *slog.Logger, exe string) (*host.Builtin, error) {
	switch d := c.String("image-driver"); d {
	case "none":
		return nil, nil
	case builtinImage:
	default:
		return nil, fmt.Errorf("--image-driver %q: want oci or none", d)
	}
	if os.Geteuid() != 0 {
		log.Warn("tasks cannot run images: the oci driver needs root")
		return nil, nil
	}
	if f := c.String("registry-auth"); f != "" {
		if _, err := loadRegistryAuth(f); err != nil { // refused at start, not at the first pull
			return nil, fmt.Errorf("--registry-auth: %w", err)
		}
	}
	cmd := []string{exe, "plugin", builtinImage, "--image-gc-delay", c.Duration("image-gc-delay").String()}
	for _, r := range c.StringSlice("insecure-registry") {
		cmd = append(cmd, "--insecure-registry", r)
	}
	if f := c.String("registry-auth"); f != "" {
		abs, err := filepath.Abs(f)
		if err != nil {
			return nil, err
		}
		cmd = append(cmd, "--registry-auth", abs)
	}
	return &host.Builtin{Name: builtinImage, Kind: contract.KindDriver, Cmd: cmd, Group: builtinImage}, nil
}

// imagePluginCommand serves the built-in oci driver (`dcosd plugin oci`).
func imagePluginCommand() *cli.Command {
	return &cli.Command{
		Name:  builtinImage,
		Usage: "serve the oci driver (container images), in a process of its own",
		Flags: []cli.Flag{
			&cli.StringSliceFlag{Name: "insecure-registry"},
			&cli.StringFlag{Name: "registry-auth"},
			&cli.DurationFlag{Name: "image-gc-delay", Value: oci.DefaultGCDelay},
		},
		Action: func(c *cli.Context) error {
			env := host.MemberStateDirEnv(contract.KindDriver, builtinImage)
			dir := os.Getenv(env)
			if dir == "" {
				return errors.New("plugin " + builtinImage + ": " + env + " is not set: only the agent starts plugins")
			}
			var auth map[string]oci.Credentials
			if f := c.String("registry-auth"); f != "" {
				var err error
				if auth, err = loadRegistryAuth(f); err != nil {
					return fmt.Errorf("--registry-auth: %w", err)
				}
			}
			exe, err := selfExe()
			if err != nil {
				return err
			}
			d, err := oci.New(oci.Options{StateDir: dir, Insecure: c.StringSlice("insecure-registry"),
				Auth: func(registry string) (oci.Credentials, bool) {
					cr, ok := auth[registry]
					return cr, ok
				},
				GCDelay:       c.Duration("image-gc-delay"),
				SupervisorCmd: []string{exe, "supervisor", "--state-dir", filepath.Join(dir, "executor")},
				Logger:        logger(c)})
			if err != nil {
				return err
			}
			defer d.Close()
			return servePlugins(map[string]any{contract.KindDriver: d})
		},
	}
}

// maxAuthFile bounds a --registry-auth file.
const maxAuthFile = 1 << 20

// loadRegistryAuth reads a Docker config.json's "auths": registry →
// basic credentials (auth, or username and password) or a bearer token
// (registrytoken). Errors name the registry and the field.
func loadRegistryAuth(path string) (map[string]oci.Credentials, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxAuthFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxAuthFile {
		return nil, fmt.Errorf("%s: more than %d bytes", path, maxAuthFile)
	}
	return parseRegistryAuth(b)
}

// parseRegistryAuth is loadRegistryAuth's decoder.
func parseRegistryAuth(b []byte) (map[string]oci.Credentials, error) {
	var doc struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			RegistryToken string `json:"registrytoken"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		return nil, fmt.Errorf("not a Docker config.json: %w", err)
	}
	out := map[string]oci.Credentials{}
	for _, reg := range slices.Sorted(maps.Keys(doc.Auths)) { // the first bad entry, always the same
		a := doc.Auths[reg]
		// Docker keys may be URLs ("https://index.docker.io/v1/").
		host := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(reg, "https://"), "http://"), "/")
		host, _, _ = strings.Cut(host, "/")
		if host == "" {
			return nil, fmt.Errorf("auths[%q]: not a registry host", reg)
		}
		var c oci.Credentials
		switch {
		case a.RegistryToken != "":
			c.Token = a.RegistryToken
		case a.Auth != "":
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return nil, fmt.Errorf("auths[%q].auth: not base64: %w", reg, err)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			if !ok || user == "" {
				return nil, fmt.Errorf("auths[%q].auth: want base64 of USER:PASSWORD", reg)
			}
			c.Username, c.Password = user, pass
		case a.Username != "":
			c.Username, c.Password = a.Username, a.Password
		case a.IdentityToken != "":
			return nil, fmt.Errorf("auths[%q].identitytoken: OAuth2 refresh tokens are not supported; use auth or registrytoken", reg)
		default:
			return nil, fmt.Errorf("auths[%q]: no auth, username or registrytoken", reg)
		}
		out[host] = c
	}
	return out, nil
}
