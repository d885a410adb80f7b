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

// stdoutToFile sends what the process writes to its standard output to the file at path until the
// returned function restores it (Ginkgo's own console output, kept behind -v). Like stdoutToStderr it
// changes nothing when stdout is not file descriptor 1; ok says whether it redirected.
func stdoutToFile(out any, path string) (restore func(), ok bool) {
	if f, isFile := out.(*os.File); !isFile || f.Fd() != 1 {
		return func() {}, false
	}
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return func() {}, false
	}
	saved, err := unix.Dup(1)
	if err != nil {
		file.Close()
		return func() {}, false
	}
	if err := unix.Dup2(int(file.Fd()), 1); err != nil {
		unix.Close(saved)
		file.Close()
		return func() {}, false
	}
	return func() {
		_ = unix.Dup2(saved, 1)
		unix.Close(saved)
		file.Close()
	}, true
}
