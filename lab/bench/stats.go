// Package bench measures labs: how fast a change in one cluster reaches another cluster's proxies
// (propagation), and what a mesh costs as clusters and endpoints grow (scale). Every figure keeps its raw
// samples; summaries are percentiles over the samples, and growth is a fitted power-law exponent.
package bench

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Summary is the distribution of a figure's samples.
type Summary struct {
	Count int     `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Min   float64 `json:"min"`
	Mean  float64 `json:"mean"`
}

// Summarize returns the samples' percentiles (nearest-rank, as latency tools report them: the p-th
// percentile is the smallest sample with at least p% of the samples at or below it).
func Summarize(samples []float64) Summary {
	if len(samples) == 0 {
		return Summary{}
	}
	s := append([]float64(nil), samples...)
	sort.Float64s(s)
	sum := 0.0
	for _, v := range s {
		sum += v
	}
	return Summary{Count: len(s), P50: Percentile(s, 50), P90: Percentile(s, 90), P99: Percentile(s, 99), Max: s[len(s)-1], Min: s[0], Mean: sum / float64(len(s))}
}

// Percentile is the nearest-rank p-th percentile of sorted samples.
func Percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// Fit is a power law y = A * x^Exponent fitted by least squares on log(x), log(y).
type Fit struct {
	Exponent float64 `json:"exponent"`
	A        float64 `json:"a"`
	// R2 is the coefficient of determination of the log-log fit.
	R2 float64 `json:"r2"`
	// Points is how many (x, y) pairs the fit used.
	Points int `json:"points"`
}

// FitPowerLaw fits y = A x^k to the points with x, y > 0. It needs two distinct x at least.
func FitPowerLaw(x, y []float64) (Fit, error) {
	if len(x) != len(y) {
		return Fit{}, fmt.Errorf("%d x for %d y", len(x), len(y))
	}
	var lx, ly []float64
	for i := range x {
		if x[i] > 0 && y[i] > 0 {
			lx = append(lx, math.Log(x[i]))
			ly = append(ly, math.Log(y[i]))
		}
	}
	n := float64(len(lx))
	if len(lx) < 2 {
		return Fit{}, fmt.Errorf("a fit needs two points at least, have %d", len(lx))
	}
	var sx, sy, sxx, sxy float64
	for i := range lx {
		sx += lx[i]
		sy += ly[i]
		sxx += lx[i] * lx[i]
		sxy += lx[i] * ly[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return Fit{}, fmt.Errorf("a fit needs two distinct x")
	}
	k := (n*sxy - sx*sy) / den
	b := (sy - k*sx) / n
	mean := sy / n
	var ssTot, ssRes float64
	for i := range lx {
		p := b + k*lx[i]
		ssRes += (ly[i] - p) * (ly[i] - p)
		ssTot += (ly[i] - mean) * (ly[i] - mean)
	}
	r2 := 1.0
	if ssTot > 0 {
		r2 = 1 - ssRes/ssTot
	}
	return Fit{Exponent: k, A: math.Exp(b), R2: r2, Points: len(lx)}, nil
}

// Growth says in words how a figure grows with its fitted exponent ("linearly", "sub-linearly", ...).
func (f Fit) Growth() string {
	switch k := f.Exponent; {
	case k < 0.15:
		return "stays flat"
	case k < 0.85:
		return "grows sub-linearly"
	case k < 1.15:
		return "grows linearly"
	case k < 1.85:
		return "grows super-linearly"
	default:
		return "grows quadratically or faster"
	}
}

// Seconds converts durations to seconds, for Summarize.
func Seconds(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}
