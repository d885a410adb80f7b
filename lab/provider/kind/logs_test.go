package kind

import (
	"os"
	"path/filepath"
	"testing"
)

// TestDropBinaryLogs: a node directory as `kind export logs` writes it here (from a kind lab on this
// machine) keeps its text logs and loses the journal files and login records.
func TestDropBinaryLogs(t *testing.T) {
	dir := t.TempDir()
	node := filepath.Join(dir, "lab-c1-control-plane")
	for _, f := range []string{"journal/cceca0f63898c177b06a7d066b0783b1/system.journal", "journal.log", "kubelet.log", "containerd.log", "wtmp", "btmp", "lastlog", "faillog", "pods/x/0.log"} {
		p := filepath.Join(node, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dropBinaryLogs(dir)
	for _, f := range []string{"journal.log", "kubelet.log", "containerd.log", "pods/x/0.log"} {
		if _, err := os.Stat(filepath.Join(node, f)); err != nil {
			t.Errorf("text log %s removed: %v", f, err)
		}
	}
	for _, f := range binaryLogs {
		if _, err := os.Stat(filepath.Join(node, f)); !os.IsNotExist(err) {
			t.Errorf("binary log %s kept", f)
		}
	}
}
