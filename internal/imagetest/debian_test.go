package imagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDebianRootFS_Nginx builds nginx's root filesystem, checks what the
// maintainer scripts would have made, then runs NginxEntrypoint in it (in
// a private mount namespace, chrooted into an overlay over the shared tree
// so that the tree stays as built) on a free loopback port and gets
// Debian's default page.
func TestDebianRootFS_Nginx(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the tree's files are owned by their users, and chroot and mount need it")
	}
	t.Cleanup(Cleanup)
	start := time.Now()
	root := NginxRootFS(t)
	first := time.Since(start)
	start = time.Now()
	if again := NginxRootFS(t); again != root {
		t.Errorf("second NginxRootFS = %s, want the process's tree %s", again, root)
	}
	t.Logf("build: first call %s (the .debs from %s), second call %s", first.Round(time.Millisecond), DebCacheDir(), time.Since(start).Round(time.Microsecond))

	t.Run("fixups", func(t *testing.T) {
		checkFile(t, root, "etc/passwd", "www-data:*:33:33:")
		checkFile(t, root, "etc/group", "adm:*:4:")
		checkFile(t, root, "var/www/html/index.nginx-debian.html", NginxWelcome)
		if dst, err := os.Readlink(filepath.Join(root, "etc/nginx/sites-enabled/default")); err != nil || dst != "../sites-available/default" {
			t.Errorf("default site link = %q, %v; want ../sites-available/default", dst, err)
		}
		for _, c := range []struct {
			path     string
			uid, gid uint32
			mode     os.FileMode
		}{
			{"var/log/nginx", 0, 4, os.ModeDir | 0o755},
			{"var/log/nginx/error.log", 33, 4, 0o640},
			{"var/lib/nginx/body", 33, 33, os.ModeDir | 0o700},
			{"run", 0, 0, os.ModeDir | 0o755},
			{"tmp", 0, 0, os.ModeDir | os.ModeSticky | 0o777},
		} {
			fi, err := os.Lstat(filepath.Join(root, c.path))
			if err != nil {
				t.Error(err)
				continue
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid != c.uid || st.Gid != c.gid || fi.Mode() != c.mode {
				t.Errorf("%s: %d:%d %s, want %d:%d %s", c.path, st.Uid, st.Gid, fi.Mode(), c.uid, c.gid, c.mode)
			}
		}
	})

	t.Run("serves", func(t *testing.T) {
		body := runNginx(t, root)
		if !strings.Contains(body, NginxWelcome) {
			t.Errorf("GET / lacks %q:\n%s", NginxWelcome, body)
		}
	})
}

// checkFile fails t unless root/name contains want.
func checkFile(t *testing.T, root, name, want string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, name))
	if err != nil {
		t.Error(err)
		return
	}
	if !strings.Contains(string(b), want) {
		t.Errorf("%s lacks %q", name, want)
	}
}

// runNginx starts nginx from root on a free loopback port, returns the
// body of GET /, and stops it. A port taken between choosing and binding
// is retried.
func runNginx(t *testing.T, root string) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		body, err := tryNginx(t, root)
		if err == nil {
			return body
		}
		if !errors.Is(err, errPortTaken) || attempt == 3 {
			t.Fatal(err)
		}
	}
}

var errPortTaken = errors.New("port taken")

func tryNginx(t *testing.T, root string) (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()

	// The overlay's upper layer gets the site listening on the port; nginx
	// writes its logs, pid and temp files there too.
	dir := t.TempDir()
	upper, work, merged := filepath.Join(dir, "upper"), filepath.Join(dir, "work"), filepath.Join(dir, "merged")
	for _, d := range []string{upper + "/etc/nginx/sites-available", work, merged} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", err
		}
	}
	site, err := os.ReadFile(filepath.Join(root, "etc/nginx/sites-available/default"))
	if err != nil {
		return "", err
	}
	conf := strings.Replace(string(site), "listen 80 default_server;", fmt.Sprintf("listen 127.0.0.1:%d default_server;", port), 1)
	conf = strings.Replace(conf, "listen [::]:80 default_server;", "", 1)
	if conf == string(site) {
		return "", errors.New("Debian's default site has no \"listen 80 default_server;\" to change")
	}
	if err := os.WriteFile(filepath.Join(upper, "etc/nginx/sites-available/default"), []byte(conf), 0o644); err != nil {
		return "", err
	}

	var stderr bytes.Buffer
	// unshare (no --fork) execs sh, which execs chroot, which execs nginx:
	// cmd's process is nginx's master. The mount namespace, and so the
	// overlay, goes away with it.
	script := `mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$3" "$4" && shift 3 && exec chroot "$@"`
	args := append([]string{"--mount", "--propagation", "private", "sh", "-c", script, "sh", root, upper, work, merged}, NginxEntrypoint...)
	cmd := exec.Command("unshare", args...)
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) // nginx's fast shutdown; workers follow
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	}
	defer stop()

	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	client := &http.Client{Timeout: 2 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		select {
		case err := <-exited:
			stopped = true
			out := stderr.String()
			if strings.Contains(out, "Address already in use") {
				return "", errPortTaken
			}
			return "", fmt.Errorf("nginx exited before answering: %v: %s", err, out)
		case <-ctx.Done():
			return "", fmt.Errorf("nginx did not answer %s: %s", url, stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		res, err := client.Get(url)
		if err != nil {
			continue
		}
		b, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil {
			return "", err
		}
		if res.StatusCode != http.StatusOK {
			return "", fmt.Errorf("GET %s: %s", url, res.Status)
		}
		if srv := res.Header.Get("Server"); !strings.HasPrefix(srv, "nginx") {
			t.Errorf("Server %q, want nginx's", srv)
		}
		stop()
		if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(mi), merged) {
			t.Errorf("the overlay %s is mounted in the test's namespace", merged)
		}
		return string(b), nil
	}
}
