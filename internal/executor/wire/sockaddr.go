package wire

import (
	"fmt"
	"path/filepath"
	"syscall"
)

// SocketAddr returns the address to bind or connect to for the socket
// <dir>/SocketName, whatever dir's length: the path itself when it fits
// a unix socket address (108 bytes on Linux), else
// /proc/self/fd/N/supervisor.sock through an O_PATH descriptor of dir,
// which the kernel resolves to the same socket file. Call done once the
// socket is bound or connected (it closes the descriptor).
func SocketAddr(dir string) (addr string, done func(), err error) {
	sock := filepath.Join(dir, SocketName)
	if len(sock) < len(syscall.RawSockaddrUnix{}.Path) {
		return sock, func() {}, nil
	}
	fd, err := openPath(dir)
	if err != nil {
		return "", nil, fmt.Errorf("socket dir %s: %w", dir, err)
	}
	return fmt.Sprintf("/proc/self/fd/%d/%s", fd, SocketName), func() { syscall.Close(fd) }, nil
}
