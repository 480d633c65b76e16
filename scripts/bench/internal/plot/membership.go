package main

import (
	"cmp"
	"fmt"
	"image/color"
	"slices"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// membershipChart draws membership-summary.csv: failure detection time
// (median, max as a whisker) against the cluster size for each
// implementation and profile (orch lan, serf lan, orch fast, then any
// other), from the newest row of each.
func membershipChart(dir string) (*figure, error) {
	t, err := readTable(dir, "membership-summary.csv")
	if err != nil {
		return nil, err
	}
	if err := t.requireCols("impl", "profile", "n", "detect_median_ms", "detect_max_ms"); err != nil {
		return nil, err
	}
	type key struct {
		impl, profile string
		n             int
	}
	latest := map[key]row{}
	for _, r := range t.rows {
		n, err := strconv.Atoi(r.str("n"))
		if err != nil || r.str("impl") == "" {
			continue
		}
		k := key{r.str("impl"), r.str("profile"), n}
		if prev, ok := latest[k]; !ok || later(r, prev) {
			latest[k] = r
		}
	}
	type series struct{ impl, profile string }
	var ss []series
	var ns []int
	var missing []string
	var used []row
	for k, r := range latest {
		_, okMed := r.num("detect_median_ms")
		_, okMax := r.num("detect_max_ms")
		if !okMed || !okMax {
			why := "no complete run"
			if u := r.str("unformed"); u != "" {
				why = "no result: " + shorten(u, 90)
			}
			missing = append(missing, fmt.Sprintf("%s %s N=%d (%s)", k.impl, k.profile, k.n, why))
			continue
		}
		used = append(used, r)
		if s := (series{k.impl, k.profile}); !slices.Contains(ss, s) {
			ss = append(ss, s)
		}
		if !slices.Contains(ns, k.n) {
			ns = append(ns, k.n)
		}
	}
	if len(ss) == 0 {
		return nil, skipf("%s has no row with a detection median and max", t.name)
	}
	rank := func(s series) int {
		switch s {
		case series{"orch", "lan"}:
			return 0
		case series{"serf", "lan"}:
			return 1
		case series{"orch", "fast"}:
			return 2
		}
		return 3
	}
	slices.SortFunc(ss, func(a, b series) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), cmp.Compare(a.impl, b.impl), cmp.Compare(a.profile, b.profile))
	})
	slices.Sort(ns)
	slices.Sort(missing)
	slices.SortFunc(used, func(a, b row) int { return cmp.Compare(a.line, b.line) })

	p := newPlot("Failure detection: SIGKILL to every survivor marking the member failed",
		"cluster size N (hosts)", "detection time (s)")
	names := make([]string, len(ns))
	for i, n := range ns {
		names[i] = strconv.Itoa(n)
	}
	nominal(p, names)
	p.Legend.Left = true
	top := 0.0
	colors := map[series]color.Color{{"orch", "lan"}: blue, {"serf", "lan"}: orange, {"orch", "fast"}: green}
	glyphs := []draw.GlyphDrawer{draw.CircleGlyph{}, draw.SquareGlyph{}, draw.TriangleGlyph{}, draw.RingGlyph{}, draw.PyramidGlyph{}}
	for i, s := range ss {
		col, ok := colors[s]
		if !ok {
			col = palette[(i+3)%len(palette)]
		}
		off := (float64(i) - float64(len(ss)-1)/2) * 0.07 // whiskers side by side
		var xys plotter.XYs
		var errs plotter.YErrors
		for j, n := range ns {
			r, ok := latest[key{s.impl, s.profile, n}]
			if !ok {
				continue
			}
			med, okMed := r.num("detect_median_ms")
			mx, okMax := r.num("detect_max_ms")
			if !okMed || !okMax {
				continue
			}
			xys = append(xys, plotter.XY{X: float64(j) + off, Y: med / 1000})
			errs = append(errs, struct{ Low, High float64 }{Low: 0, High: max(mx-med, 0) / 1000})
			top = max(top, mx/1000)
		}
		line, pts, err := plotter.NewLinePoints(xys)
		if err != nil {
			return nil, err
		}
		line.Color, line.Width = col, vg.Points(2)
		pts.Color, pts.Shape, pts.Radius = col, glyphs[i%len(glyphs)], vg.Points(4)
		eb, err := plotter.NewYErrorBars(struct {
			plotter.XYs
			plotter.YErrors
		}{xys, errs})
		if err != nil {
			return nil, err
		}
		eb.Color, eb.Width, eb.CapWidth = col, vg.Points(1.2), vg.Points(8)
		p.Add(line, pts, eb)
		p.Legend.Add(fmt.Sprintf("%s, profile %s", s.impl, s.profile), line, pts)
	}
	headroom(p, top, 1.3)

	foot := []string{"Per run: SIGKILL of one agent until the last survivor declares it failed. " +
		"Line and points: median over the runs; whisker: up to the max. Each series' newest row per N."}
	if len(missing) > 0 {
		foot = append(foot, "Not shown: "+strings.Join(missing, "; ")+".")
	}
	return &figure{panels: []*plot.Plot{p}, footnote: append(foot, provenance(t, used))}, nil
}

// shorten cuts s to at most n runes, with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
