package main

import (
	"fmt"
	"image/color"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/vg"
)

// overlayChart draws the newest run of overlay-summary.csv: TCP
// throughput over the underlay and the overlay per GRO setting with their
// ratio, and the latency the overlay adds in each direction.
func overlayChart(dir string) (*figure, error) {
	t, err := readTable(dir, "overlay-summary.csv")
	if err != nil {
		return nil, err
	}
	if err := t.requireCols("gro", "metric", "value"); err != nil {
		return nil, err
	}
	rows := t.latestRun()
	var gros []string
	val := map[string]map[string]float64{} // gro → metric → value
	var mtus []string
	for _, r := range rows {
		v, ok := r.num("value")
		if !ok {
			continue
		}
		gro, metric := r.str("gro"), r.str("metric")
		if gro != "" && !slices.Contains(gros, gro) {
			gros = append(gros, gro)
		}
		if val[gro] == nil {
			val[gro] = map[string]float64{}
		}
		val[gro][metric] = v
		if mtu := r.str("underlay_mtu"); mtu != "" && !slices.Contains(mtus, mtu) {
			mtus = append(mtus, mtu)
		}
	}

	// Throughput: GRO settings with both medians.
	var tg []string
	for _, g := range gros {
		_, u := val[g]["underlay_tcp_median"]
		_, o := val[g]["overlay_tcp_median"]
		if u && o {
			tg = append(tg, g)
		}
	}
	var panels []*plot.Plot
	var notes []string
	if len(tg) > 0 {
		p := newPlot("TCP throughput (iperf3, median of runs)", "GRO on the hosts' interfaces", "throughput (Gbit/s)")
		nominal(p, groNames(tg))
		w := vg.Points(min(48, 220/float64(len(tg))))
		under, over := make([]float64, len(tg)), make([]float64, len(tg))
		var xs, tops []float64
		var ratios []string
		top := 0.0
		for i, g := range tg {
			under[i], over[i] = val[g]["underlay_tcp_median"], val[g]["overlay_tcp_median"]
			ratio, ok := val[g]["tcp_ratio"]
			if !ok && under[i] > 0 {
				ratio = over[i] / under[i]
			}
			xs, tops = append(xs, float64(i)), append(tops, max(under[i], over[i]))
			ratios = append(ratios, fmt.Sprintf("overlay/underlay\n= %.2f", ratio))
			top = max(top, under[i], over[i])
		}
		bu := bars(under, grey, w, -w/2)
		bo := bars(over, blue, w, w/2)
		p.Add(bu, bo)
		p.Add(labels(xs, under, fmtAll(under, "%.1f"), 9, -w/2))
		p.Add(labels(xs, over, fmtAll(over, "%.1f"), 9, w/2))
		r := labels(xs, tops, ratios, 10, 0)
		r.Offset.Y = vg.Points(16)
		p.Add(r)
		p.Legend.Add("underlay (host to host)", bu)
		p.Legend.Add("overlay (replica to replica)", bo)
		headroom(p, top, 1.6)
		panels = append(panels, p)
	} else {
		notes = append(notes, "no GRO setting with underlay_tcp_median and overlay_tcp_median: throughput not drawn")
	}

	// Added latency: GRO settings with either direction.
	var lg []string
	for _, g := range gros {
		_, a := val[g]["added_latency_p50_1to2"]
		_, b := val[g]["added_latency_p50_2to1"]
		if a || b {
			lg = append(lg, g)
		}
	}
	if len(lg) > 0 {
		p := newPlot("Latency the overlay adds (ping, p50)", "GRO on the hosts' interfaces", "overlay − underlay round trip (µs)")
		nominal(p, groNames(lg))
		w := vg.Points(min(48, 220/float64(len(lg))))
		top := 0.0
		for i, dir := range []struct{ metric, name string }{{"added_latency_p50_1to2", "h1 → h2"}, {"added_latency_p50_2to1", "h2 → h1"}} {
			vs := make([]float64, len(lg))
			var xs, ys []float64
			var strs []string
			for j, g := range lg {
				if v, ok := val[g][dir.metric]; ok {
					vs[j] = max(v, 0) // a negative difference (noise) draws no bar
					xs, ys = append(xs, float64(j)), append(ys, vs[j])
					strs = append(strs, fmt.Sprintf("%.0f µs", v))
					top = max(top, v)
				}
			}
			off := w * vg.Length(float64(i)-0.5)
			b := bars(vs, []color.Color{green, purple}[i], w, off)
			p.Add(b, labels(xs, ys, strs, 9, off))
			p.Legend.Add(dir.name, b)
		}
		headroom(p, top, 1.3)
		panels = append(panels, p)
	} else {
		notes = append(notes, "no added_latency_p50_* metric: added latency not drawn")
	}
	if len(panels) == 0 {
		return nil, skipf("%s: the newest run has neither throughput nor added latency", t.name)
	}

	setup := "Two hosts (network namespaces) on one machine"
	if len(mtus) == 1 {
		setup += ", underlay MTU " + mtus[0]
	}
	if v, ok := val[""]["overlay_mtu"]; ok {
		setup += fmt.Sprintf(", overlay MTU %.0f", v)
	}
	foot := []string{setup + ". Throughput: median of the iperf3 runs on each path; ratio of the medians. " +
		"Added latency: overlay ping p50 (replica to replica) minus underlay ping p50 (host to host)."}
	for _, n := range notes {
		foot = append(foot, "Not shown: "+n+".")
	}
	return &figure{title: "Overlay network vs the underlay", panels: panels, footnote: append(foot, provenance(t, rows))}, nil
}

// groNames labels GRO settings: "off" → "GRO off".
func groNames(gros []string) []string {
	out := make([]string, len(gros))
	for i, g := range gros {
		out[i] = "GRO " + g
	}
	return out
}

// fmtAll formats each value with format.
func fmtAll(vs []float64, format string) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = fmt.Sprintf(format, v)
	}
	return out
}
