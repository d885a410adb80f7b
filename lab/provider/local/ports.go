package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"mclab.dev/mclab/lab/state"
)

// Port names: every port a cluster's processes listen on (all on 127.0.0.1), in block order. istiod's
// six ports are reserved with the cluster so that a lab's port block never changes.
const (
	PortEtcdClient  = "etcd-client"
	PortEtcdPeer    = "etcd-peer"
	PortAPIServer   = "apiserver"
	PortKCM         = "kube-controller-manager"
	PortScheduler   = "kube-scheduler"
	PortKwok        = "kwok"
	PortIstiodGRPC  = "istiod-grpc"
	PortIstiodTLS   = "istiod-grpc-tls"
	PortIstiodMon   = "istiod-monitoring"
	PortIstiodHooks = "istiod-webhook"
	PortIstiodHTTP  = "istiod-http"
	PortIstiodCtrlz = "istiod-ctrlz"
	portBlockSize   = 16
	portRangeStart  = 20000
	portRangeEnd    = 32000        // below Linux's ephemeral range (32768-60999), so outgoing connections never take them
	portsFile       = "ports.json" // kept across `up`s so that kubeconfigs stay valid
)

var portNames = []string{PortEtcdClient, PortEtcdPeer, PortAPIServer, PortKCM, PortScheduler, PortKwok,
	PortIstiodGRPC, PortIstiodTLS, PortIstiodMon, PortIstiodHooks, PortIstiodHTTP, PortIstiodCtrlz}

// Ports are one cluster's ports by name.
type Ports map[string]int

// LabPorts are a lab's ports by cluster.
type LabPorts map[string]Ports

// allocatePorts returns the lab's ports, allocating a block of ports for every cluster that has none.
// It holds the state root's lock while it reads every lab's reservation, so concurrent `up`s of two labs
// never take the same block, and it checks that every port of a new block is free on 127.0.0.1. Labs
// of other state roots (another user's MCLAB_STATE_DIR, tests side by side) are kept apart by the
// machine's reservations (reservationDir): a block allocated but not yet listening is not free.
func allocatePorts(store state.Store, labDir string, clusters []string) (LabPorts, error) {
	unlock, err := store.LockRoot()
	if err != nil {
		return nil, err
	}
	defer unlock()
	own, err := loadPorts(labDir)
	if err != nil {
		return nil, err
	}
	res, err := openReservations(reservationDir())
	if err != nil {
		return nil, err
	}
	defer res.close()
	self, err := filepath.Abs(labDir)
	if err != nil {
		return nil, err
	}
	taken := res.taken(self)
	labs, _ := store.List()
	for _, l := range labs {
		other, _ := loadPorts(filepath.Join(store.Dir(l), "local"))
		for _, ps := range other {
			for _, p := range ps {
				taken[blockOf(p)] = true
			}
		}
	}
	changed := false
	for _, c := range clusters {
		if len(own[c]) == len(portNames) {
			continue
		}
		base, err := freeBlock(taken)
		if err != nil {
			return nil, err
		}
		taken[base] = true
		ps := Ports{}
		for i, n := range portNames {
			ps[n] = base + i
		}
		own[c] = ps
		changed = true
	}
	if changed {
		data, _ := json.MarshalIndent(own, "", "  ")
		if err := state.WriteFile(filepath.Join(labDir, portsFile), data); err != nil {
			return nil, err
		}
	}
	for _, ps := range own {
		if err := res.reserve(blockOf(ps[PortEtcdClient]), self); err != nil {
			return nil, err
		}
	}
	return own, nil
}

// EnvReservationDir overrides where the machine's port reservations are kept.
const EnvReservationDir = "MCLAB_PORT_RESERVATIONS"

// reservationDir holds one file per port block a local lab of any state root on this machine holds,
// named by the block's first port and holding the lab's directory; a reservation whose lab no longer
// records that block (the lab is gone, or was removed by hand) is stale and is taken back.
func reservationDir() string {
	if d := os.Getenv(EnvReservationDir); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("mclab-ports-%d", os.Getuid()))
}

type reservations struct {
	dir    string
	unlock func()
}

// openReservations takes the machine-wide lock on dir's reservations (waiting for it).
func openReservations(dir string) (*reservations, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("port reservations: %w", err)
	}
	unlock, err := state.Store{Root: dir}.LockRoot()
	if err != nil {
		return nil, fmt.Errorf("port reservations: %w", err)
	}
	return &reservations{dir: dir, unlock: unlock}, nil
}

func (r *reservations) close() { r.unlock() }

// taken returns the blocks other labs hold, dropping stale reservations.
func (r *reservations) taken(self string) map[int]bool {
	out := map[int]bool{}
	entries, _ := os.ReadDir(r.dir)
	for _, e := range entries {
		base, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile(filepath.Join(r.dir, e.Name()))
		if err != nil {
			continue
		}
		owner := strings.TrimSpace(string(data))
		if owner == self {
			continue
		}
		if holds(owner, base) {
			out[base] = true
		} else {
			os.Remove(filepath.Join(r.dir, e.Name()))
		}
	}
	return out
}

// holds reports whether the lab at labDir still records the block at base.
func holds(labDir string, base int) bool {
	lp, err := loadPorts(labDir)
	if err != nil {
		return true // unreadable: keep it reserved rather than risk a clash
	}
	for _, ps := range lp {
		for _, p := range ps {
			if blockOf(p) == base {
				return true
			}
		}
	}
	return false
}

func (r *reservations) reserve(base int, labDir string) error {
	return state.WriteFile(filepath.Join(r.dir, strconv.Itoa(base)), []byte(labDir+"\n"))
}

func blockOf(port int) int { return port - (port-portRangeStart)%portBlockSize }

func freeBlock(taken map[int]bool) (int, error) {
	for base := portRangeStart; base+portBlockSize <= portRangeEnd; base += portBlockSize {
		if taken[base] {
			continue
		}
		if blockFree(base) {
			return base, nil
		}
	}
	return 0, fmt.Errorf("no free block of %d ports on 127.0.0.1 between %d and %d; stop other labs (`mclab list`) or free ports", portBlockSize, portRangeStart, portRangeEnd)
}

func blockFree(base int) bool {
	for p := base; p < base+len(portNames); p++ {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		l.Close()
	}
	return true
}

func loadPorts(labDir string) (LabPorts, error) {
	data, err := os.ReadFile(filepath.Join(labDir, portsFile))
	if errors.Is(err, os.ErrNotExist) {
		return LabPorts{}, nil
	}
	if err != nil {
		return nil, err
	}
	lp := LabPorts{}
	if err := json.Unmarshal(data, &lp); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(labDir, portsFile), err)
	}
	return lp, nil
}

// busyPorts returns the ports of ps that something listens on, sorted.
func busyPorts(ps Ports) []int {
	var out []int
	for _, p := range ps {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			out = append(out, p)
			continue
		}
		l.Close()
	}
	sort.Ints(out)
	return out
}

// bindErrors says why each port cannot be bound now ("20022: bind: address already in use").
func bindErrors(ports []int) string {
	var out []string
	for _, p := range ports {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			out = append(out, fmt.Sprintf("%d: %v", p, errors.Unwrap(err)))
			continue
		}
		l.Close()
		out = append(out, fmt.Sprintf("%d: free again", p))
	}
	return strings.Join(out, ", ")
}

// portHolders names the processes listening on ports ("port 20022: pid 123 (pilot-discovery)"), from
// /proc/net/tcp and each process's file descriptors, and, for a port that no process listens on, the
// sockets bound to it and their state ("port 20022: no listener; ESTABLISHED to 127.0.0.1:41234"), for
// messages about a port that is taken.
func portHolders(ports []int) string {
	want := map[string]int{}
	for _, p := range ports {
		want[fmt.Sprintf("%04X", p)] = p
	}
	inodes := map[string]int{}
	others := map[int][]string{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(data), "\n")[1:] {
			fs := strings.Fields(line)
			if len(fs) < 10 {
				continue
			}
			i := strings.LastIndexByte(fs[1], ':')
			if i < 0 {
				continue
			}
			p, ok := want[fs[1][i+1:]]
			if !ok {
				continue
			}
			if fs[3] == "0A" { // LISTEN
				inodes["socket:["+fs[9]+"]"] = p
				continue
			}
			others[p] = append(others[p], tcpState(fs[3])+" to "+hexAddr(fs[2]))
		}
	}
	var out []string
	if len(inodes) > 0 {
		procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
		for _, fd := range procs {
			link, err := os.Readlink(fd)
			if err != nil {
				continue
			}
			if port, ok := inodes[link]; ok {
				pid := strings.Split(fd, "/")[2]
				comm, _ := os.ReadFile("/proc/" + pid + "/comm")
				out = append(out, fmt.Sprintf("port %d: pid %s (%s)", port, pid, strings.TrimSpace(string(comm))))
				delete(inodes, link)
			}
		}
	}
	listening := map[int]bool{}
	for _, p := range inodes {
		listening[p] = true
	}
	for _, p := range ports {
		if s := others[p]; len(s) > 0 && !listening[p] {
			if len(s) > 3 {
				s = append(s[:3], fmt.Sprintf("and %d more", len(s)-3))
			}
			out = append(out, fmt.Sprintf("port %d: no listener; sockets %s", p, strings.Join(s, ", ")))
		}
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// tcpState names a state of /proc/net/tcp (include/net/tcp_states.h).
func tcpState(hex string) string {
	names := map[string]string{"01": "ESTABLISHED", "02": "SYN_SENT", "03": "SYN_RECV", "04": "FIN_WAIT1", "05": "FIN_WAIT2",
		"06": "TIME_WAIT", "07": "CLOSE", "08": "CLOSE_WAIT", "09": "LAST_ACK", "0A": "LISTEN", "0B": "CLOSING", "0C": "NEW_SYN_RECV"}
	if n, ok := names[hex]; ok {
		return n
	}
	return "state " + hex
}

// hexAddr turns an IPv4 address of /proc/net/tcp ("0100007F:4E36") into "127.0.0.1:20022"; others are
// returned as they are.
func hexAddr(a string) string {
	host, port, ok := strings.Cut(a, ":")
	pn, err := strconv.ParseUint(port, 16, 16)
	if !ok || err != nil || len(host) != 8 {
		return a
	}
	b, err := strconv.ParseUint(host, 16, 32)
	if err != nil {
		return a
	}
	return fmt.Sprintf("%d.%d.%d.%d:%d", b&0xff, b>>8&0xff, b>>16&0xff, b>>24, pn)
}
