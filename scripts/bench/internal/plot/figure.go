package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Every chart is widthPx × heightPx pixels at dpi (font sizes are in
// points: 1 pt = dpi/72 px).
const (
	widthPx  = 800
	heightPx = 500
	dpi      = 96
)

// Colours (the first ones of matplotlib's tab10, distinguishable with the
// common forms of colour blindness when paired blue/orange).
var (
	blue   = color.RGBA{0x1f, 0x77, 0xb4, 0xff}
	orange = color.RGBA{0xff, 0x7f, 0x0e, 0xff}
	green  = color.RGBA{0x2c, 0xa0, 0x2c, 0xff}
	red    = color.RGBA{0xd6, 0x27, 0x28, 0xff}
	purple = color.RGBA{0x94, 0x67, 0xbd, 0xff}
	brown  = color.RGBA{0x8c, 0x56, 0x4b, 0xff}
	grey   = color.RGBA{0x55, 0x55, 0x55, 0xff}
	light  = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}

	palette = []color.Color{blue, orange, green, purple, brown, red}
)

func init() {
	// Sans-serif reads better than gonum's default serif at this size.
	sans := font.Font{Typeface: "Liberation", Variant: "Sans"}
	plot.DefaultFont = sans
	plotter.DefaultFont = sans
}

// figure is one PNG: one or more panels side by side under an optional
// title, and a footnote saying where the data came from.
type figure struct {
	title    string // over all panels; leave empty for one panel with its own title
	panels   []*plot.Plot
	footnote []string // paragraphs; wrapped to the width
}

// px converts pixels to a length on the dpi canvas.
func px(n float64) vg.Length { return vg.Length(n) * vg.Inch / dpi }

// textStyle is a plain left-aligned style of the default font.
func textStyle(size vg.Length, c color.Color) text.Style {
	return text.Style{
		Color:   c,
		Font:    font.From(plot.DefaultFont, size),
		Handler: plot.DefaultTextHandler,
	}
}

// render draws f as a PNG of widthPx × heightPx to w.
func (f *figure) render(w io.Writer) error {
	if len(f.panels) == 0 {
		return fmt.Errorf("no panel to draw")
	}
	c := vgimg.NewWith(vgimg.UseWH(px(widthPx), px(heightPx)), vgimg.UseDPI(dpi))
	dc := draw.New(c)
	pad := vg.Points(6)

	// Footnote, bottom-up.
	foot := textStyle(8, grey)
	var lines []string
	for _, para := range f.footnote {
		lines = append(lines, wrap(para, foot, dc.Max.X-dc.Min.X-2*pad)...)
	}
	lineH := foot.Font.Size * 1.3
	for i, l := range lines {
		y := dc.Min.Y + pad/2 + lineH*vg.Length(len(lines)-1-i)
		dc.FillText(foot, vg.Point{X: dc.Min.X + pad, Y: y}, l)
	}
	area := draw.Crop(dc, pad, -pad, pad+lineH*vg.Length(len(lines)), -pad)

	if f.title != "" {
		ts := textStyle(14, color.Black)
		ts.XAlign, ts.YAlign = draw.XCenter, draw.YTop
		dc.FillText(ts, vg.Point{X: (area.Min.X + area.Max.X) / 2, Y: area.Max.Y}, f.title)
		area = draw.Crop(area, 0, 0, 0, -(ts.Height(f.title) + pad))
	}

	tiles := draw.Tiles{Rows: 1, Cols: len(f.panels), PadX: vg.Points(16)}
	cs := plot.Align([][]*plot.Plot{f.panels}, tiles, area)
	for i, p := range f.panels {
		// Keep the legend off the axes.
		p.Legend.XOffs, p.Legend.YOffs = -vg.Points(6), -vg.Points(4)
		if p.Legend.Left {
			p.Legend.XOffs = vg.Points(6)
		}
		p.Draw(cs[0][i])
	}
	_, err := vgimg.PngCanvas{Canvas: c}.WriteTo(w)
	return err
}

// save renders f to path through a temporary file in the same directory.
func (f *figure) save(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".plot-*.png")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // fails harmlessly once renamed
	if err := f.render(tmp); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// wrap breaks s into lines no wider than width in style st, at spaces.
func wrap(s string, st text.Style, width vg.Length) []string {
	var lines []string
	cur := ""
	for _, word := range strings.Fields(s) {
		next := word
		if cur != "" {
			next = cur + " " + word
		}
		if cur != "" && st.Width(next) > width {
			lines = append(lines, cur)
			next = word
		}
		cur = next
	}
	if cur != "" {
		lines = append(lines, cur)
	}
	return lines
}

// newPlot returns a plot with the house style: sizes for 800×500, a
// light horizontal grid, legend at the top right.
func newPlot(title, xLabel, yLabel string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = 12
	p.Title.Padding = vg.Points(6)
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.X.Label.TextStyle.Font.Size = 11
	p.Y.Label.TextStyle.Font.Size = 11
	p.X.Tick.Label.Font.Size = 10
	p.Y.Tick.Label.Font.Size = 10
	p.Y.Tick.Marker = niceTicks{}
	p.Legend.TextStyle.Font.Size = 10
	p.Legend.Top = true
	p.Legend.ThumbnailWidth = vg.Points(16)
	p.Legend.Padding = vg.Points(3)
	g := plotter.NewGrid()
	g.Vertical.Color = nil
	g.Horizontal.Color = light
	g.Horizontal.Width = vg.Points(0.5)
	p.Add(g)
	return p
}

// nominal sets the X axis to the categories at 0..len-1 with a margin.
func nominal(p *plot.Plot, names []string) {
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(names))-0.5
	p.X.Tick.Label.Font.Size = 10
}

// bars returns a bar chart of vs at 0..len-1 (plus offset), no outline.
func bars(vs []float64, c color.Color, width, offset vg.Length) *plotter.BarChart {
	b, err := plotter.NewBarChart(plotter.Values(vs), width)
	if err != nil {
		panic(err) // only for non-finite values, which callers filter
	}
	b.Color = c
	b.LineStyle.Width = 0
	b.Offset = offset
	return b
}

// labels returns text at (xs[i], ys[i]), centred and just above the
// point, moved by xOff.
func labels(xs, ys []float64, strs []string, size vg.Length, xOff vg.Length) *plotter.Labels {
	xy := make(plotter.XYs, len(xs))
	for i := range xs {
		xy[i] = plotter.XY{X: xs[i], Y: ys[i]}
	}
	l, err := plotter.NewLabels(plotter.XYLabels{XYs: xy, Labels: strs})
	if err != nil {
		panic(err)
	}
	for i := range l.TextStyle {
		l.TextStyle[i].Font.Size = size
		l.TextStyle[i].XAlign = draw.XCenter
		l.TextStyle[i].YAlign = draw.YBottom
	}
	l.Offset = vg.Point{X: xOff, Y: vg.Points(2)}
	return l
}

// hline returns a horizontal line from x0 to x1 at y.
func hline(x0, x1, y float64, c color.Color, dashed bool) *plotter.Line {
	l, err := plotter.NewLine(plotter.XYs{{X: x0, Y: y}, {X: x1, Y: y}})
	if err != nil {
		panic(err)
	}
	l.Color = c
	l.Width = vg.Points(1.5)
	if dashed {
		l.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	}
	return l
}

// headroom sets the Y axis from 0 to top×factor, so that labels and the
// legend have room above the data.
func headroom(p *plot.Plot, top, factor float64) {
	p.Y.Min = 0
	if top <= 0 || math.IsNaN(top) {
		top = 1
	}
	p.Y.Max = top * factor
}

// provenance is the footnote's "where from": the CSV's name, and each
// source ("working tree at …") with the times of the runs drawn. A CSV
// without a time or source column says so, with the file's time.
func provenance(t *table, rows []row) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Data: scripts/bench/results/%s", t.name)
	hasTime, hasSource := false, false
	for _, r := range rows {
		hasTime = hasTime || r.has("time")
		hasSource = hasSource || r.has("orch_source") || r.has("source")
	}
	if !hasTime && !hasSource {
		fmt.Fprintf(&b, ", file written %s (the CSV has no time or source column).", t.modTime.UTC().Format(time.RFC3339))
		return b.String()
	}
	var sources []string
	times := map[string][]string{}
	for _, r := range rows {
		src := r.source()
		if src == "" {
			src = "source not recorded"
		}
		if _, ok := times[src]; !ok {
			sources = append(sources, src)
		}
		if ts := r.str("time"); ts != "" && !slices.Contains(times[src], ts) {
			times[src] = append(times[src], ts)
		}
	}
	for i, src := range sources {
		sep := "; "
		if i == 0 {
			sep = " — "
		}
		b.WriteString(sep + src)
		ts := times[src]
		slices.Sort(ts)
		switch len(ts) {
		case 0:
			if !hasTime {
				fmt.Fprintf(&b, ", file written %s (no time column)", t.modTime.UTC().Format(time.RFC3339))
			}
		case 1:
			b.WriteString(", run of " + ts[0])
		default:
			b.WriteString(", runs of " + strings.Join(ts, ", "))
		}
	}
	b.WriteString(".")
	return b.String()
}

// thousands formats v with a k suffix: 137682 → "137.7k".
func thousands(v float64) string { return fmt.Sprintf("%.1fk", v/1000) }

// seconds formats milliseconds as seconds with two decimals.
func seconds(ms float64) string { return fmt.Sprintf("%.2f s", ms/1000) }

// plural returns "1 run", "2 runs".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// later reports whether a was written after b: by the time column, then
// by the line in the file.
func later(a, b row) bool {
	ta, oka := a.when()
	tb, okb := b.when()
	if oka && okb && !ta.Equal(tb) {
		return ta.After(tb)
	}
	return a.line > b.line
}

// niceTicks puts a labelled tick at every multiple of a round step (1, 2,
// 2.5 or 5 × 10^k) giving five to eight intervals; gonum's default labels
// only some of its ticks, which leaves short axes with two numbers.
// Labels are value/scale with suffix appended (scale 0 means 1).
type niceTicks struct {
	scale  float64
	suffix string
}

func (t niceTicks) Ticks(lo, hi float64) []plot.Tick {
	if !(hi > lo) || math.IsInf(hi-lo, 0) {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	scale := t.scale
	if scale == 0 {
		scale = 1
	}
	raw := (hi - lo) / 8
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 2.5, 5} {
		if m*mag >= raw*0.999 {
			step = m * mag
			break
		}
	}
	decimals := 0
	for d := step / scale; decimals < 6 && math.Abs(d-math.Round(d)) > 1e-9*math.Max(1, d); d *= 10 {
		decimals++
	}
	var ticks []plot.Tick
	for i := math.Ceil(lo/step - 1e-9); i*step <= hi+step*1e-9; i++ {
		v := i * step
		if v == 0 {
			v = 0 // not -0
		}
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v/scale, 'f', decimals, 64) + t.suffix})
	}
	return ticks
}
