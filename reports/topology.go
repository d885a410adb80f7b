package reports

import (
	"fmt"
	"sort"
)

// TopologyCluster is one cluster in the HTML picture.
type TopologyCluster struct {
	Name, Network, Mesh, Role, Gateway string
	// Primary is the primary a remote cluster is served by ("" for primaries).
	Primary string
}

// TopologyLink is a relation drawn between two clusters: Kind "reads" (a primary reads the other
// through a remote secret) or "exports" (a federated mesh exports Label's hosts to the other's mesh).
type TopologyLink struct {
	From, To, Kind, Label string
}

// The picture's geometry: clusters are cards in a grid inside their network, networks side by side
// inside their mesh, meshes one below the other, so 50 clusters stay within a screen's width.
const (
	cardW, cardH       = 200, 104
	gap                = 14
	netPad, netHeader  = 14, 34
	meshPad, meshTitle = 16, 30
	maxCols            = 3
)

// MaxServeArrows is the most primary-to-remote arrows the picture draws.
const MaxServeArrows = 8

type svgBox struct {
	X, Y, W, H int
	Title      string
	Lines      []string
	Class      string
}

type svgLine struct {
	X1, Y1, X2, Y2 int
	// CY is the depth the curve dips to, below both cards.
	CY    int
	Label string
	Class string
}

type topologyPicture struct {
	W, H   int
	Meshes []svgBox
	Nets   []svgBox
	Cards  []svgBox
	// Gateways sit on their network's top edge.
	Gateways []svgBox
	// Serves are arrows from a primary to each remote it serves.
	Serves []svgLine
}

// layout places the clusters: which network and mesh each is in, where the east-west gateways sit and
// which primary serves which remote.
func layout(clusters []TopologyCluster, links []TopologyLink, failed map[string]bool) topologyPicture {
	var pic topologyPicture
	type netKey struct{ mesh, net string }
	var meshes []string
	nets := map[string][]string{}
	members := map[netKey][]TopologyCluster{}
	for _, c := range clusters {
		mesh, net := c.Mesh, c.Network
		if mesh == "" {
			mesh = "mesh"
		}
		if _, ok := nets[mesh]; !ok {
			meshes = append(meshes, mesh)
		}
		k := netKey{mesh, net}
		if _, ok := members[k]; !ok {
			nets[mesh] = append(nets[mesh], net)
		}
		members[k] = append(members[k], c)
	}
	// Arrows from a primary to its remotes run below the cards: room for them under every row. With
	// many remotes they would be a tangle: the cards say "remote of" instead.
	remotes := 0
	for _, c := range clusters {
		if c.Primary != "" {
			remotes++
		}
	}
	drawLinks := remotes+len(links) <= MaxServeArrows
	arrowRoom := 0
	if remotes+len(links) > 0 && drawLinks {
		arrowRoom = 28
	}
	center := map[string][2]int{}
	y := 10
	for _, mesh := range meshes {
		x := 10 + meshPad
		top := y + meshTitle
		maxH := 0
		for _, net := range nets[mesh] {
			cs := members[netKey{mesh, net}]
			cols := min(maxCols, len(cs))
			rows := (len(cs) + cols - 1) / cols
			w := netPad*2 + cols*cardW + (cols-1)*gap
			h := netHeader + netPad + rows*cardH + (rows-1)*gap + arrowRoom
			var gw string
			for i, c := range cs {
				cx := x + netPad + (i%cols)*(cardW+gap)
				cy := top + netHeader + (i/cols)*(cardH+gap)
				lines := []string{c.Role}
				if c.Primary != "" {
					lines[0] = "remote of " + c.Primary
				}
				if c.Gateway != "" {
					lines = append(lines, "gateway "+c.Gateway)
					if gw == "" {
						gw = c.Gateway
					}
				} else {
					lines = append(lines, "no east-west gateway")
				}
				class := "card " + c.Role
				if failed[c.Name] {
					class += " failed"
					lines = append(lines, "✗ named by a failed check")
				}
				pic.Cards = append(pic.Cards, svgBox{X: cx, Y: cy, W: cardW, H: cardH, Title: c.Name, Lines: lines, Class: class})
				center[c.Name] = [2]int{cx + cardW/2, cy + cardH/2}
			}
			label := "network: " + net
			if net == "" {
				label = "network: (none)"
			}
			pic.Nets = append(pic.Nets, svgBox{X: x, Y: top, W: w, H: h, Title: label, Class: "net"})
			if gw != "" {
				// On the network's lower edge, where traffic from other networks comes in.
				pic.Gateways = append(pic.Gateways, svgBox{X: x + w - 150, Y: top + h - 10, W: 140, H: 20, Title: "⇄ 15443 " + gw, Class: "gw"})
			}
			x += w + gap
			maxH = max(maxH, h)
		}
		meshW := x - gap - 10 + meshPad
		meshH := meshTitle + maxH + meshPad + 10
		pic.Meshes = append(pic.Meshes, svgBox{X: 10, Y: y, W: meshW, H: meshH, Title: "mesh: " + mesh, Class: "mesh"})
		pic.W = max(pic.W, 10+meshW+10)
		y += meshH + gap
	}
	pic.H = y
	link := func(from, to, class, label string) {
		a, ok1 := center[from]
		b, ok2 := center[to]
		if !ok1 || !ok2 || !drawLinks {
			return
		}
		y1, y2 := a[1]+cardH/2, b[1]+cardH/2
		if b[1] > a[1]+cardH/2 {
			// The target is on a lower row: into its top edge.
			y2 = b[1] - cardH/2 - 2
			pic.Serves = append(pic.Serves, svgLine{X1: a[0], Y1: y1, X2: b[0], Y2: y2, CY: (y1 + y2) / 2, Label: label, Class: class})
			return
		}
		pic.Serves = append(pic.Serves, svgLine{X1: a[0], Y1: y1, X2: b[0], Y2: y2 + 2, CY: max(y1, y2) + arrowRoom - 4, Label: label, Class: class})
	}
	for _, c := range clusters {
		if c.Primary != "" {
			link(c.Primary, c.Name, "serves", fmt.Sprintf("%s serves %s", c.Primary, c.Name))
		}
	}
	for _, l := range links {
		link(l.From, l.To, l.Kind, l.Label)
	}
	sort.SliceStable(pic.Serves, func(i, j int) bool { return pic.Serves[i].Label < pic.Serves[j].Label })
	return pic
}
