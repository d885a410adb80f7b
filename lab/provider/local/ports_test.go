package local

import (
	"net"
	"strconv"
	"strings"
	"testing"
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
