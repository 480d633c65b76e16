package main

import (
	"fmt"
	"image/color"
	"regexp"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// dnsP99 matches the summary's p99 metrics: SERVER_loadQPS_p99_median.
var dnsP99 = regexp.MustCompile(`^(orch|dnsmasq)_load(\d+)_p99_median$`)

// dnsChart draws the newest run of dns-summary.csv: queries per second of
// orch and dnsmasq, and the probe's p99 latency at rest and under each
// fixed load.
func dnsChart(dir string) (*figure, error) {
	t, err := readTable(dir, "dns-summary.csv")
	if err != nil {
		return nil, err
	}
	if err := t.requireCols("metric", "value"); err != nil {
		return nil, err
	}
	rows := t.latestRun()
	m := map[string]float64{}
	for _, r := range rows {
		if v, ok := r.num("value"); ok {
			m[r.str("metric")] = v
		}
	}
	var panels []*plot.Plot
	var notes []string

	oq, okO := m["orch_qps_median"]
	mq, okM := m["dnsmasq_qps_median"]
	if okO && okM {
		title := "Throughput (dnsperf, closed loop)"
		if mq > 0 {
			title += fmt.Sprintf("\norch/dnsmasq = %.2f×", oq/mq)
		}
		p := newPlot(title, "server", "queries/s (median of rounds)")
		nominal(p, []string{"orch", "dnsmasq"})
		w := vg.Points(60)
		bo := bars([]float64{oq, 0}, blue, w, 0)
		bm := bars([]float64{0, mq}, orange, w, 0)
		p.Add(bo, bm)
		p.Add(labels([]float64{0, 1}, []float64{oq, mq}, []string{thousands(oq) + " q/s", thousands(mq) + " q/s"}, 10, 0))
		headroom(p, max(oq, mq), 1.2)
		p.Y.Tick.Marker = niceTicks{scale: 1000, suffix: "k"}
		panels = append(panels, p)
	} else {
		notes = append(notes, "no orch_qps_median and dnsmasq_qps_median: throughput not drawn")
	}

	// p99 under load: loads in q/s, 0 = at rest.
	var loads []int
	p99 := map[string]map[int]float64{"orch": {}, "dnsmasq": {}}
	for metric, v := range m {
		s := dnsP99.FindStringSubmatch(metric)
		if s == nil {
			continue
		}
		load, _ := strconv.Atoi(s[2])
		p99[s[1]][load] = v
		if !slices.Contains(loads, load) {
			loads = append(loads, load)
		}
	}
	slices.Sort(loads)
	if len(loads) > 0 {
		xl := "offered load (dnsperf, fixed rate)"
		if okM && mq > 0 {
			xl = "offered load (dnsperf; % of dnsmasq's max)"
		}
		p := newPlot("Latency seen by a 1,000 q/s probe", xl, "p99 latency (µs, median of rounds)")
		var names []string
		for _, l := range loads {
			switch {
			case l == 0:
				names = append(names, "at rest")
			case okM && mq > 0:
				names = append(names, fmt.Sprintf("%s q/s\n(%.0f%%)", thousands(float64(l)), 100*float64(l)/mq))
			default:
				names = append(names, thousands(float64(l))+" q/s")
			}
		}
		nominal(p, names)
		w := vg.Points(min(34, 200/float64(len(loads))))
		top := 0.0
		for i, impl := range []string{"orch", "dnsmasq"} {
			vs := make([]float64, len(loads))
			var xs, ys []float64
			var strs []string
			for j, l := range loads {
				if v, ok := p99[impl][l]; ok {
					vs[j] = v
					xs, ys = append(xs, float64(j)), append(ys, v)
					strs = append(strs, fmt.Sprintf("%.0f", v))
					top = max(top, v)
				}
			}
			off := w * vg.Length(float64(i)-0.5)
			b := bars(vs, []color.Color{blue, orange}[i], w, off)
			p.Add(b)
			p.Add(labels(xs, ys, strs, 8, off))
			p.Legend.Add(impl, b)
		}
		p.Legend.Left = true
		headroom(p, top, 1.25)
		panels = append(panels, p)
	} else {
		notes = append(notes, "no *_load*_p99_median metrics: latency not drawn")
	}
	if len(panels) == 0 {
		return nil, skipf("%s: the newest run has neither throughput nor p99 metrics", t.name)
	}
	foot := []string{"Closed-loop maximum: median over the rounds of dnsperf's queries/s, the two servers alternating which goes first. " +
		"Latency: p99 of a separate open-loop probe while dnsperf sends a fixed load (fractions of dnsmasq's median maximum)."}
	for _, n := range notes {
		foot = append(foot, "Not shown: "+n+".")
	}
	return &figure{title: "DNS: orch's resolver vs dnsmasq, same names, same machine", panels: panels,
		footnote: append(foot, provenance(t, rows))}, nil
}
