package reports

import (
	"html/template"
	"io"
)

// TopologyCluster is one cluster in the HTML picture.
type TopologyCluster struct {
	Name, Network, Mesh, Role, Gateway string
}

var page = template.Must(template.New("summary").Funcs(template.FuncMap{
	"inc": func(i int) int { return i + 1 },
	"x":   func(i int) int { return 20 + i*200 },
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>mclab conformance: {{.R.Environment.Lab}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
.conformant{color:#17803d}.non-conformant{color:#b42318}.inconclusive{color:#b54708}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
.pass{background:#e8f5e9}.fail{background:#fdecea}.skip{background:#fff8e1}pre{white-space:pre-wrap;margin:0}
</style></head><body>
<h1>mclab conformance: {{.R.Environment.Lab}} <span class="{{.R.Verdict}}">{{.R.Verdict}}</span></h1>
<p>Istio {{.R.Implementation.Version}} ({{.R.Implementation.Model}}) on provider {{.R.Environment.Provider}}, {{.R.Date}}</p>
<svg width="{{x (len .Clusters)}}" height="150" role="img" aria-label="topology">
{{range $i, $c := .Clusters}}
<g transform="translate({{x $i}},10)">
<rect width="180" height="120" rx="8" fill="#eef4ff" stroke="#5b7fd6"/>
<text x="10" y="22" font-weight="bold">{{$c.Name}} ({{$c.Role}})</text>
<text x="10" y="44">network {{$c.Network}}</text>
<text x="10" y="64">mesh {{$c.Mesh}}</text>
<text x="10" y="84">{{if $c.Gateway}}gateway {{$c.Gateway}}{{else}}no east-west gateway{{end}}</text>
</g>{{end}}
</svg>
{{range .R.Profiles}}
<h2>{{.Name}}: {{.Core.Result}} ({{.Summary}})</h2>
<table><tr><th>test</th><th>view</th><th>result</th><th>why</th></tr>
{{range .Core.FailedTests}}<tr class="fail"><td>{{.Name}}</td><td>{{.View}}</td><td>{{.Verdict}}</td><td><pre>{{.Reason}}</pre></td></tr>{{end}}
{{range .Core.SkippedTests}}<tr class="skip"><td>{{.Name}}</td><td>{{.View}}</td><td>skipped</td><td><pre>{{.Reason}}</pre></td></tr>{{end}}
{{if .Core.Statistics.Passed}}<tr class="pass"><td colspan="4">{{.Core.Statistics.Passed}} passed</td></tr>{{end}}
</table>{{end}}
</body></html>
`))

// WriteHTML writes the single-file summary: the topology (clusters, networks, meshes, gateways) and
// every profile's results.
func WriteHTML(w io.Writer, r *ConformanceReport, clusters []TopologyCluster) error {
	return page.Execute(w, struct {
		R        *ConformanceReport
		Clusters []TopologyCluster
	}{r, clusters})
}
