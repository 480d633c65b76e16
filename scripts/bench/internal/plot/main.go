package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// chart is one PNG and the function that builds it from the results.
type chart struct {
	name  string // file name under --out, and the --charts key without .png
	build func(results string) (*figure, error)
}

var charts = []chart{
	{"heal", healChart},
	{"dns", dnsChart},
	{"overlay", overlayChart},
	{"membership", membershipChart},
}

func main() {
	results := flag.String("results", "scripts/bench/results", "directory of the benchmarks' CSV files")
	out := flag.String("out", "docs/img", "directory for the PNG files")
	only := flag.String("charts", "", "comma-separated subset of "+chartNames()+" (default: all)")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: %s [flags]\n\nDraws %s.png into --out from the summary CSVs in --results.\n\n",
			filepath.Base(os.Args[0]), strings.ReplaceAll(chartNames(), ",", ".png, "))
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 0 {
		fatalf("unexpected argument %q", flag.Arg(0))
	}
	want := map[string]bool{}
	for s := range strings.SplitSeq(*only, ",") {
		if s = strings.TrimSuffix(strings.TrimSpace(s), ".png"); s == "" {
			continue
		}
		if !isChart(s) {
			fatalf("--charts: unknown chart %q (have %s)", s, chartNames())
		}
		want[s] = true
	}
	wrote, failed := 0, 0
	for _, c := range charts {
		if len(want) > 0 && !want[c.name] {
			continue
		}
		path := filepath.Join(*out, c.name+".png")
		err := drawChart(c, *results, path)
		switch {
		case errors.Is(err, errSkip):
			logf("%s: not drawn: %v", path, strings.TrimPrefix(err.Error(), errSkip.Error()+": "))
		case err != nil:
			logf("%s: %v", path, err)
			failed++
		default:
			fmt.Println(path)
			wrote++
		}
	}
	logf("%d chart(s) written to %s", wrote, *out)
	if failed > 0 {
		os.Exit(1)
	}
}

// drawChart builds one chart and saves it; a panic in the plotting library
// (bad data it does not expect) fails that chart only.
func drawChart(c chart, results, path string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: drawing failed: %v", errSkip, r)
		}
	}()
	f, err := c.build(results)
	if err != nil {
		return err
	}
	return f.save(path)
}

func chartNames() string {
	var names []string
	for _, c := range charts {
		names = append(names, c.name)
	}
	return strings.Join(names, ",")
}

func isChart(name string) bool {
	for _, c := range charts {
		if c.name == name {
			return true
		}
	}
	return false
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "plot: "+format+"\n", args...)
}

func fatalf(format string, args ...any) {
	logf(format, args...)
	os.Exit(2)
}
