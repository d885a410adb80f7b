//go:build unix

package cli

import (
	"os"

	"golang.org/x/sys/unix"
)

// stdoutToStderr sends what the process writes to its standard output to standard error until the
// returned function restores it: Ginkgo's progress must not mix with a JSON or YAML document on stdout.
// It changes nothing when stdout is not this process's file descriptor 1 (tests, with buffers).
func stdoutToStderr(out any) func() {
	if f, ok := out.(*os.File); !ok || f.Fd() != 1 {
		return func() {}
	}
	saved, err := unix.Dup(1)
	if err != nil {
		return func() {}
	}
	if err := unix.Dup2(2, 1); err != nil {
		unix.Close(saved)
		return func() {}
	}
	return func() {
		_ = unix.Dup2(saved, 1)
		unix.Close(saved)
	}
}
