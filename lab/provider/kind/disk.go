package kind

import "golang.org/x/sys/unix"

// freeDisk is the space free to unprivileged users under dir, when dir is on this host (Docker on
// Linux); Docker Desktop's root is inside its VM, where it cannot be read.
func freeDisk(dir string) (uint64, bool) {
	if dir == "" {
		return 0, false
	}
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}
