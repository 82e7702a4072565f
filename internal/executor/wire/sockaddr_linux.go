package wire

import "golang.org/x/sys/unix"

// openPath opens dir for its path only (O_PATH), to name it by descriptor.
func openPath(dir string) (int, error) {
	return unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}
