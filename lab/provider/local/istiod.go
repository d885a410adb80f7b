package local

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/state"
)

var _ provider.IstiodProcesses = (*Provider)(nil)

// IstiodEndpoint implements provider.IstiodProcesses. Every address is on loopback; the webhook host is
// "localhost", which istiod puts in its serving certificate when ISTIOD_CUSTOM_HOST=localhost.
func (p *Provider) IstiodEndpoint(cluster string) (provider.IstiodEndpoint, error) {
	ports, err := loadPorts(p.dir)
	if err != nil {
		return provider.IstiodEndpoint{}, err
	}
	ps, ok := ports[cluster]
	if !ok {
		return provider.IstiodEndpoint{}, fmt.Errorf("cluster %s has no ports allocated; run `mclab up`", cluster)
	}
	at := func(name string) string { return "127.0.0.1:" + strconv.Itoa(ps[name]) }
	return provider.IstiodEndpoint{
		XDS:        at(PortIstiodGRPC),
		XDSTLS:     at(PortIstiodTLS),
		Webhook:    "localhost:" + strconv.Itoa(ps[PortIstiodHooks]),
		Monitoring: at(PortIstiodMon),
		Debug:      at(PortIstiodHTTP),
	}, nil
}

// istiodTimeout bounds the wait for /ready.
const istiodTimeout = 60 * time.Second

// StartIstiod implements provider.IstiodProcesses: it writes the spec's files under the cluster's
// istiod directory (istiod resolves its defaults against its working directory: recipe gotcha 3),
// starts pilot-discovery there unless it already runs, and waits for /ready.
func (p *Provider) StartIstiod(ctx context.Context, cluster string, spec provider.IstiodSpec) error {
	l := p.layout(cluster)
	dir := filepath.Join(l.dir, "istiod")
	// A file at one of istiod's default config paths overrides the ConfigMap it would watch: one an
	// earlier mclab wrote (the mesh config was once written once at up, so edits to the istio ConfigMap
	// did nothing) goes, unless the spec gives it.
	for _, rel := range []string{"etc/istio/config/mesh", "etc/istio/config/meshNetworks", "var/lib/istio/inject/config", "var/lib/istio/inject/values"} {
		if _, given := spec.Files[rel]; !given {
			if err := os.Remove(filepath.Join(dir, rel)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	for rel, data := range spec.Files {
		if err := state.WriteFile(filepath.Join(dir, rel), data); err != nil {
			return err
		}
	}
	ports, err := loadPorts(p.dir)
	if err != nil {
		return err
	}
	ps := ports[cluster]
	ep, err := p.IstiodEndpoint(cluster)
	if err != nil {
		return err
	}
	bin := spec.Binary
	if bin == "" {
		bin = p.bins.Path("pilot-discovery")
	}
	rec, _ := loadRecord(l.proc("istiod"))
	if rec.alive() && len(rec.Args) > 0 && rec.Args[0] != bin {
		fmt.Fprintf(p.cfg.Out, "restarting istiod of %s on %s (was %s)\n", cluster, bin, rec.Args[0])
		if err := stopAll([]*procRecord{rec}, 10*time.Second); err != nil {
			return fmt.Errorf("stopping istiod of %s to upgrade it: %w", cluster, err)
		}
	}
	if !rec.alive() {
		own := Ports{"istiod": ps[PortIstiodGRPC], "http": ps[PortIstiodHTTP], "hooks": ps[PortIstiodHooks]}
		// A process whose leader has exited (a zombie, no longer alive) may hold its sockets until its
		// last thread is gone, this lab's stopped istiod or one of a lab just removed that had the same
		// ports (seen in CI right after `mclab down` of other labs): give the ports a while to be released.
		busy := busyPorts(own)
		for deadline := time.Now().Add(30 * time.Second); len(busy) > 0 && time.Now().Before(deadline); busy = busyPorts(own) {
			time.Sleep(200 * time.Millisecond)
		}
		if len(busy) > 0 {
			return fmt.Errorf("istiod of %s cannot start: ports %v on 127.0.0.1 are taken by another program (%s; %s)", cluster, busy, portHolders(busy), bindErrors(busy))
		}
		env := append([]string{"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + dir, "TMPDIR=" + filepath.Join(l.dir, "tmp"), "GOMAXPROCS=2"}, spec.Env...)
		env = append(env, "ROOT_CA_DIR="+spec.CACertsDir, "KUBECONFIG="+l.kubeconfig())
		args := append([]string{
			"discovery",
			"--kubeconfig=" + l.kubeconfig(),
			"--meshConfig=" + filepath.Join(dir, "etc/istio/config/mesh"),
			"--networksConfig=" + filepath.Join(dir, "etc/istio/config/meshNetworks"),
			"--grpcAddr=" + ep.XDS, "--secureGRPCAddr=" + ep.XDSTLS,
			"--monitoringAddr=" + ep.Monitoring, "--httpsAddr=127.0.0.1:" + strconv.Itoa(ps[PortIstiodHooks]),
			"--httpAddr=" + ep.Debug, "--ctrlz_port=" + strconv.Itoa(ps[PortIstiodCtrlz]), "--ctrlz_address=127.0.0.1",
			"--shutdownDuration=1s",
		}, spec.Args...)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		r, err := startProcess("istiod", bin, args, env, dir, l.log("istiod"), l.proc("istiod"))
		if err != nil {
			return fmt.Errorf("istiod of %s: %w", cluster, err)
		}
		rec = r
	}
	return waitHTTP(ctx, "http://"+ep.Debug+"/ready", istiodTimeout, func() error {
		if !rec.alive() {
			return exitedError("istiod", cluster, rec.Log)
		}
		return nil
	})
}

// waitHTTP polls url until it answers 200, checking alive between tries.
func waitHTTP(ctx context.Context, url string, timeout time.Duration, alive func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	var last error
	for {
		if err := alive(); err != nil {
			return err
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		last = err
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%s not ready after %s: %v", url, timeout, last)
			}
			return context.Cause(ctx)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

var _ provider.LoadBalancerAssigner = (*Provider)(nil)

// LoadBalancerAddress implements provider.LoadBalancerAssigner: an address in 198.18.0.0/15 (the
// benchmarking range, never routed) derived from the cluster's port block, so it is unique across the
// labs of a host and stable for the lab's life. No traffic is ever sent to it: the local provider runs
// no data plane.
func (p *Provider) LoadBalancerAddress(cluster string) (string, error) {
	ports, err := loadPorts(p.dir)
	if err != nil {
		return "", err
	}
	ps, ok := ports[cluster]
	if !ok {
		return "", fmt.Errorf("cluster %s has no ports allocated", cluster)
	}
	idx := (ps[PortEtcdClient] - portRangeStart) / portBlockSize
	n := uint32(idx)*4 + 1
	return fmt.Sprintf("198.%d.%d.%d", 18+(n>>16), (n>>8)&0xff, n&0xff), nil
}

// StopIstiod implements provider.IstiodRestarter: it stops a cluster's istiod process (by its
// recorded PID); StartIstiod starts it again.
func (p *Provider) StopIstiod(_ context.Context, cluster string) error {
	rec, err := loadRecord(p.layout(cluster).proc("istiod"))
	if err != nil || !rec.alive() {
		return nil
	}
	return stopAll([]*procRecord{rec}, 5*time.Second)
}
