package reports

import (
	"bytes"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"mclab.dev/mclab/internal/chromiumtest"
)

func sampleReport() *ConformanceReport {
	return &ConformanceReport{APIVersion: APIVersion, Kind: "ConformanceReport", Verdict: NonConformant,
		Environment: Environment{Lab: "demo", Provider: "local"}, Implementation: Implementation{Version: "1.31-dev", Model: "primary-remote"}}
}

// pictures are the topologies the HTML must draw legibly: two networks, a primary with remotes, two
// meshes, and 50 clusters.
func pictures() map[string][]TopologyCluster {
	fifty := []TopologyCluster{}
	for i := 1; i <= 50; i++ {
		c := TopologyCluster{Name: fmt.Sprintf("c%d", i), Network: fmt.Sprintf("network%d", (i-1)%2+1), Mesh: "mesh1", Role: "primary"}
		if i > 2 {
			c.Role, c.Primary = "remote", fmt.Sprintf("c%d", (i-1)%2+1)
		} else {
			c.Gateway = fmt.Sprintf("198.18.0.%d", i)
		}
		fifty = append(fifty, c)
	}
	return map[string][]TopologyCluster{
		"multi-network": {{Name: "c1", Network: "network1", Mesh: "mesh1", Role: "primary", Gateway: "198.18.0.1"}, {Name: "c2", Network: "network2", Mesh: "mesh1", Role: "primary", Gateway: "198.18.0.2"}},
		"primary-remote": {{Name: "c1", Network: "network1", Mesh: "mesh1", Role: "primary", Gateway: "198.18.0.1"},
			{Name: "c2", Network: "network1", Mesh: "mesh1", Role: "remote", Primary: "c1"}, {Name: "c3", Network: "network2", Mesh: "mesh1", Role: "remote", Primary: "c1", Gateway: "198.18.0.3"}},
		"federated": {{Name: "c1", Network: "network1", Mesh: "mesh1", Role: "primary", Gateway: "198.18.0.1"}, {Name: "c2", Network: "network2", Mesh: "mesh2", Role: "primary", Gateway: "198.18.0.2"}},
		"five": {{Name: "c1", Network: "network1", Mesh: "mesh1", Role: "primary", Gateway: "198.18.0.1"}, {Name: "c2", Network: "network2", Mesh: "mesh1", Role: "primary", Gateway: "198.18.0.2"},
			{Name: "c3", Network: "network1", Mesh: "mesh1", Role: "remote", Primary: "c1"}, {Name: "c4", Network: "network2", Mesh: "mesh1", Role: "remote", Primary: "c2"}, {Name: "c5", Network: "network3", Mesh: "mesh1", Role: "primary", Gateway: "198.18.0.5"}},
		"fifty": fifty,
	}
}

// TestTopologyLayout: every cluster is drawn inside its network, inside its mesh; a remote is joined to
// its primary; 50 clusters fit a screen's width (an earlier layout drew one row of boxes, 10,000 px).
func TestTopologyLayout(t *testing.T) {
	for name, cs := range pictures() {
		pic := layout(cs, nil, nil)
		if pic.W > 1400 {
			t.Errorf("%s: %d px wide", name, pic.W)
		}
		if len(pic.Cards) != len(cs) {
			t.Errorf("%s: %d cards for %d clusters", name, len(pic.Cards), len(cs))
		}
		inside := func(in, out svgBox) bool {
			return in.X >= out.X && in.Y >= out.Y && in.X+in.W <= out.X+out.W && in.Y+in.H <= out.Y+out.H
		}
		for _, c := range pic.Cards {
			ok := false
			for _, n := range pic.Nets {
				if inside(c, n) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: card %s is in no network box", name, c.Title)
			}
		}
		for _, n := range pic.Nets {
			ok := false
			for _, m := range pic.Meshes {
				if inside(n, m) {
					ok = true
				}
			}
			if !ok {
				t.Errorf("%s: %s is in no mesh box", name, n.Title)
			}
		}
		remotes := 0
		for _, c := range cs {
			if c.Primary != "" {
				remotes++
			}
		}
		if remotes > MaxServeArrows {
			remotes = 0 // the cards say "remote of" instead
		}
		if len(pic.Serves) != remotes {
			t.Errorf("%s: %d serve arrows for %d remotes", name, len(pic.Serves), remotes)
		}
	}
	fed := layout(pictures()["federated"], []TopologyLink{{From: "c1", To: "c2", Kind: "exports", Label: "mesh1 exports httpbin.sample.svc.cluster.local to mesh2"}}, map[string]bool{"c2": true})
	if len(fed.Meshes) != 2 || len(fed.Serves) != 1 || fed.Serves[0].Class != "exports" {
		t.Errorf("federated: %d mesh boxes, links %+v", len(fed.Meshes), fed.Serves)
	}
	for _, c := range fed.Cards {
		if (c.Title == "c2") != strings.Contains(c.Class, "failed") {
			t.Errorf("federated: card %s class %q", c.Title, c.Class)
		}
	}
}

// TestSummaryInChromium renders summary.html in headless Chromium and looks at the screenshots: the
// page is drawn (not blank), the topology has the mesh, network, card and gateway colours, and the
// 50-cluster picture is no wider than the window.
func TestSummaryInChromium(t *testing.T) {
	chromiumtest.Binary(t)
	dir := os.Getenv("MCLAB_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	for name, cs := range pictures() {
		html := filepath.Join(dir, name+".html")
		var b bytes.Buffer
		r := sampleReport()
		var links []TopologyLink
		switch name {
		case "federated":
			links = []TopologyLink{{From: "c1", To: "c2", Kind: "exports", Label: "mesh1 exports httpbin.sample.svc.cluster.local to mesh2"}}
			r.Profiles = []ProfileReport{{Name: "MC-FEDERATION", Core: Results{Result: "failure", FailedTests: []TestResult{{Name: "exported services are reachable", Reason: "a client in c2 (mesh mesh2) gets no endpoint for httpbin"}}}}}
		case "multi-network", "five":
			links = []TopologyLink{{From: "c1", To: "c2", Kind: "reads", Label: "c1 and c2 read each other"}}
		}
		if err := WriteHTML(&b, r, cs, links...); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(html, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		w := regexp.MustCompile(`<svg width="(\d+)" height="(\d+)"`).FindSubmatch(b.Bytes())
		if width, _ := strconv.Atoi(string(w[1])); width > 1400 {
			t.Errorf("%s: the picture is %d px wide", name, width)
		}
		height, _ := strconv.Atoi(string(w[2]))
		shot := filepath.Join(dir, name+".png")
		img, log := chromiumtest.Screenshot(t, html, shot, 1400, max(1000, height+400))
		// The page is self-contained and scriptless: any console message is a mistake.
		if strings.Contains(log, "CONSOLE") {
			t.Errorf("%s: console messages:\n%s", name, log)
		}
		seen := chromiumtest.Colours(img)
		for label, want := range map[string]color.RGBA{
			"network fill": {0xf3, 0xf6, 0xff, 0xff}, "gateway fill": {0xff, 0xf4, 0xe0, 0xff}, "verdict red": {0xb4, 0x23, 0x18, 0xff},
		} {
			if !seen[want] {
				t.Errorf("%s: the screenshot shows no %s (%v)", name, label, want)
			}
		}
		if len(seen) < 20 {
			t.Errorf("%s: the screenshot has %d colours: blank?", name, len(seen))
		}
		for label, want := range map[string]struct {
			names []string
			c     color.RGBA
		}{
			"serve arrow":     {[]string{"primary-remote", "five"}, color.RGBA{0x7a, 0x4f, 0xb5, 0xff}},
			"read link":       {[]string{"multi-network", "five"}, color.RGBA{0x2f, 0x7d, 0x6d, 0xff}},
			"failed card red": {[]string{"federated"}, color.RGBA{0xd9, 0x2d, 0x20, 0xff}},
			"export link":     {[]string{"federated"}, color.RGBA{0xe0, 0x7b, 0x00, 0xff}},
		} {
			for _, n := range want.names {
				if n == name && !seen[want.c] {
					t.Errorf("%s: no %s drawn", name, label)
				}
			}
		}
	}
}
