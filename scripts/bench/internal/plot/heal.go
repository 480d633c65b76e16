package main

import (
	"cmp"
	"fmt"
	"image/color"
	"slices"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// defaultAims are scripts/bench/internal/heal's aims for T2 in ms, used
// when a row has no aim_t2_ms.
var defaultAims = map[string]float64{"lan": 10000, "fast": 4000}

// profileColor gives each profile a colour: lan blue, fast green, others
// from the palette.
func profileColor(profile string, i int) color.Color {
	switch profile {
	case "lan":
		return blue
	case "fast":
		return green
	}
	return palette[(i+3)%len(palette)]
}

// profileRank orders lan, fast, then the rest by name.
func profileRank(p string) int {
	switch p {
	case "lan":
		return 0
	case "fast":
		return 1
	}
	return 2
}

// healChart draws heal-summary.csv: T2 median (bar) and max (error bar)
// per profile and cluster size, from the newest row with a T2 of each,
// with each profile's aim.
func healChart(dir string) (*figure, error) {
	t, err := readTable(dir, "heal-summary.csv")
	if err != nil {
		return nil, err
	}
	if err := t.requireCols("profile", "n", "t2_median_ms", "t2_max_ms"); err != nil {
		return nil, err
	}
	type key struct {
		profile string
		n       int
	}
	latest := map[key]row{}
	older := 0
	for _, r := range t.rows {
		_, okMed := r.num("t2_median_ms")
		_, okMax := r.num("t2_max_ms")
		n, err := strconv.Atoi(r.str("n"))
		if !okMed || !okMax || err != nil || r.str("profile") == "" {
			continue // a profile that gave no repetition, or a broken row
		}
		k := key{r.str("profile"), n}
		if prev, ok := latest[k]; ok {
			older++
			if !later(r, prev) {
				continue
			}
		}
		latest[k] = r
	}
	if len(latest) == 0 {
		return nil, skipf("%s has no row with a T2 median and max", t.name)
	}
	keys := make([]key, 0, len(latest))
	for k := range latest {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(profileRank(a.profile), profileRank(b.profile)),
			cmp.Compare(a.profile, b.profile), cmp.Compare(a.n, b.n))
	})

	p := newPlot("Healing after a host running a replica dies: T2, the slowest survivor",
		"profile and cluster size", "T2 (s after the host died)")
	var names []string
	var rows []row
	top := 0.0
	for _, k := range keys {
		r := latest[k]
		rows = append(rows, r)
		name := fmt.Sprintf("%s, %d hosts", k.profile, k.n)
		if c, ok := r.num("containerd_hosts"); ok && int(c) > 0 && int(c) < k.n {
			name = fmt.Sprintf("%s, %d hosts\n(%d with containerd)", k.profile, k.n, int(c))
		}
		names = append(names, name)
	}
	nominal(p, names)

	// Bars per profile (consecutive categories), so the legend names them.
	barW := vg.Points(min(70, 420/float64(len(keys))))
	var errXY plotter.XYs
	var errs plotter.YErrors
	var lx, ly []float64
	var lt []string
	for i := 0; i < len(keys); {
		j := i
		for j < len(keys) && keys[j].profile == keys[i].profile {
			j++
		}
		prof := keys[i].profile
		col := profileColor(prof, i)
		var meds []float64
		aim := 0.0
		for k := i; k < j; k++ {
			r := latest[keys[k]]
			med, _ := r.num("t2_median_ms")
			mx, _ := r.num("t2_max_ms")
			med, mx = med/1000, mx/1000
			meds = append(meds, med)
			errXY = append(errXY, plotter.XY{X: float64(k), Y: med})
			errs = append(errs, struct{ Low, High float64 }{Low: 0, High: max(mx-med, 0)})
			runs, _ := r.num("runs")
			lx, ly = append(lx, float64(k)), append(ly, med/2)
			lt = append(lt, fmt.Sprintf("median %.2f s\nmax %.2f s\n%s", med, mx, plural(int(runs), "run")))
			top = max(top, mx)
			if a, ok := r.num("aim_t2_ms"); ok && a > 0 {
				aim = a / 1000
			}
		}
		if aim == 0 {
			aim = defaultAims[prof] / 1000
		}
		b := bars(meds, col, barW, 0)
		b.XMin = float64(i)
		p.Add(b)
		p.Legend.Add(prof+": T2 median", b)
		if aim > 0 {
			l := hline(float64(i)-0.45, float64(j-1)+0.45, aim, darken(col), true)
			p.Add(l)
			p.Legend.Add(fmt.Sprintf("%s: aim ≤ %g s", prof, aim), l)
			top = max(top, aim)
		}
		i = j
	}
	eb, err := plotter.NewYErrorBars(struct {
		plotter.XYs
		plotter.YErrors
	}{errXY, errs})
	if err != nil {
		return nil, err
	}
	eb.LineStyle.Width = vg.Points(1.5)
	eb.CapWidth = vg.Points(12)
	p.Add(eb)
	maxLine := hline(0, 1, 0, color.Black, false) // legend thumbnail only
	maxLine.Width = vg.Points(1.5)
	p.Legend.Add("T2 max (whisker)", maxLine)
	// Figures inside the bars, half-way up: clear of the aims and whiskers.
	l := labels(lx, ly, lt, 10, 0)
	for i := range l.TextStyle {
		l.TextStyle[i].Color = color.White
		l.TextStyle[i].YAlign = draw.YCenter
	}
	l.Offset.Y = 0
	p.Add(l)
	headroom(p, top, 1.35)

	note := "T2: every survivor's DNS answers 3 live replicas, each answering GET /; per repetition the slowest survivor, median and max over the repetitions. " +
		"The newest row of each profile and size is drawn"
	if older > 0 {
		note += fmt.Sprintf(" (%s not drawn)", plural(older, "older row"))
	}
	return &figure{panels: []*plot.Plot{p}, footnote: []string{note + ".", provenance(t, rows)}}, nil
}

// darken returns c at 55% brightness, so that an aim line shows across a
// bar of the profile's colour.
func darken(c color.Color) color.Color {
	r, g, b, a := c.RGBA()
	f := func(v uint32) uint8 { return uint8(v * 55 / 100 >> 8) }
	return color.RGBA{f(r), f(g), f(b), uint8(a >> 8)}
}
