package local

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"mclab.dev/mclab/lab/state"
)

// TestPortHolders names the process listening on a port (this test's own).
func TestPortHolders(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := l.Addr().(*net.TCPAddr).Port
	got := portHolders([]int{port})
	if !strings.Contains(got, "port "+strconv.Itoa(port)+": pid ") {
		t.Errorf("portHolders(%d) = %q", port, got)
	}
}

// TestPortHoldersWithoutListener: a port whose listener is gone but whose accepted connection is still
// open is described by that connection and its state, not as an empty holder list.
func TestPortHoldersWithoutListener(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	client, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	l.Close()
	got := portHolders([]int{port})
	want := "port " + strconv.Itoa(port) + ": no listener; sockets ESTABLISHED to " + client.LocalAddr().String()
	if !strings.Contains(got, want) {
		t.Errorf("portHolders(%d) = %q, want %q", port, got, want)
	}
}

// TestPortsApartAcrossStateRoots: two labs in two state roots (tests side by side, two users'
// MCLAB_STATE_DIRs) never get the same block, although neither listens yet; once a lab is gone its
// reservation is stale and its block is given out again.
func TestPortsApartAcrossStateRoots(t *testing.T) {
	t.Setenv(EnvReservationDir, t.TempDir())
	rootA, rootB := state.Store{Root: t.TempDir()}, state.Store{Root: t.TempDir()}
	dirA := filepath.Join(rootA.Dir("a"), "local")
	dirB := filepath.Join(rootB.Dir("b"), "local")
	a, err := allocatePorts(rootA, dirA, []string{"c1", "c2"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := allocatePorts(rootB, dirB, []string{"c1"})
	if err != nil {
		t.Fatal(err)
	}
	blocks := map[int]string{}
	for lab, lp := range map[string]LabPorts{"a": a, "b": b} {
		for c, ps := range lp {
			base := blockOf(ps[PortEtcdClient])
			if other, ok := blocks[base]; ok {
				t.Fatalf("%s/%s got block %d, which %s holds", lab, c, base, other)
			}
			blocks[base] = lab + "/" + c
		}
	}
	// A second up of a keeps its ports.
	again, err := allocatePorts(rootA, dirA, []string{"c1", "c2"})
	if err != nil || again["c1"][PortAPIServer] != a["c1"][PortAPIServer] {
		t.Fatalf("a second up must keep the ports: %v %v", again, err)
	}
	// a is removed: its blocks are free again for another root.
	if err := os.RemoveAll(rootA.Dir("a")); err != nil {
		t.Fatal(err)
	}
	c, err := allocatePorts(state.Store{Root: t.TempDir()}, filepath.Join(t.TempDir(), "c", "local"), []string{"c1"})
	if err != nil {
		t.Fatal(err)
	}
	if got := blockOf(c["c1"][PortEtcdClient]); blocks[got] != "a/c1" && blocks[got] != "a/c2" {
		t.Errorf("after a was removed, the lowest free block should be one of a's, got %d (%v)", got, blocks)
	}
}
