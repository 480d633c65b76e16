package main

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// errSkip marks a chart that cannot be drawn from the results at hand (a
// CSV or the rows it needs are missing): main reports it and goes on.
var errSkip = errors.New("skipped")

// skipf returns an error wrapping errSkip.
func skipf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errSkip, fmt.Sprintf(format, args...))
}

// table is a CSV file read by column name. The benchmarks append to most
// of their CSV files, leaving out the header once the file has content;
// a line equal to a header again (an older file rewritten by hand, or
// concatenated files) starts a new header, so rows are always read with
// the header above them.
type table struct {
	name    string    // base name, for messages and footnotes
	modTime time.Time // the file's modification time
	rows    []row
}

// row is one data line with the header it was written under.
type row struct {
	line int // 1-based line of the record in the file
	cols map[string]int
	rec  []string
}

// readTable reads dir/name. A missing file is errSkip.
func readTable(dir, name string) (*table, error) {
	path := filepath.Join(dir, name)
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, skipf("%s not found", path)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	r := csv.NewReader(f)
	r.FieldsPerRecord = -1 // rows from older versions may have fewer or more fields
	t := &table{name: name, modTime: st.ModTime()}
	var cols map[string]int
	var header []string
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, skipf("%s: %v", path, err)
			}
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		line, _ := r.FieldPos(0)
		if cols == nil || isHeader(rec, header) {
			if cols == nil && len(rec) > 0 {
				rec[0] = strings.TrimPrefix(rec[0], "\ufeff")
			}
			header = rec
			cols = make(map[string]int, len(rec))
			for i, c := range rec {
				c = strings.TrimSpace(c)
				if _, dup := cols[c]; !dup {
					cols[c] = i
				}
			}
			continue
		}
		t.rows = append(t.rows, row{line: line, cols: cols, rec: rec})
	}
	if len(t.rows) == 0 {
		return nil, skipf("%s has no data rows", path)
	}
	return t, nil
}

// isHeader reports whether rec is a header again: equal to the current
// one, or starting with the same two column names (a newer version of the
// benchmark that added columns).
func isHeader(rec, header []string) bool {
	if slices.Equal(rec, header) {
		return true
	}
	return len(rec) > 1 && len(header) > 1 && rec[0] == header[0] && rec[1] == header[1]
}

// str returns the named field, trimmed; "" if the column is absent.
func (r row) str(name string) string {
	i, ok := r.cols[name]
	if !ok || i >= len(r.rec) {
		return ""
	}
	return strings.TrimSpace(r.rec[i])
}

// has reports whether the row's header has the column.
func (r row) has(name string) bool {
	_, ok := r.cols[name]
	return ok
}

// num returns the named field as a number; false if empty, absent or not
// a finite number.
func (r row) num(name string) (float64, bool) {
	s := r.str(name)
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, false
	}
	return v, true
}

// when returns the row's time column (RFC 3339) and whether it has one.
func (r row) when() (time.Time, bool) {
	t, err := time.Parse(time.RFC3339, r.str("time"))
	return t, err == nil
}

// source returns the row's "where orch was built from" column: the
// benchmarks call it orch_source or source.
func (r row) source() string {
	if s := r.str("orch_source"); s != "" {
		return s
	}
	return r.str("source")
}

// requireCols returns errSkip naming the first of cols that no row of t
// has.
func (t *table) requireCols(cols ...string) error {
	for _, c := range cols {
		found := false
		for _, r := range t.rows {
			if r.has(c) {
				found = true
				break
			}
		}
		if !found {
			return skipf("%s has no column %q", t.name, c)
		}
	}
	return nil
}

// latestRun returns the rows of the newest run in t: the benchmarks that
// append write one time and source per run, so a run is the rows sharing
// the (time, source) of the last row with the greatest time. Without a
// time column, every row.
func (t *table) latestRun() []row {
	best := -1
	var bestT time.Time
	for i, r := range t.rows {
		if w, ok := r.when(); ok && (best < 0 || !w.Before(bestT)) {
			best, bestT = i, w
		}
	}
	if best < 0 {
		return t.rows
	}
	key := t.rows[best].str("time") + "\x00" + t.rows[best].source()
	var out []row
	for _, r := range t.rows {
		if r.str("time")+"\x00"+r.source() == key {
			out = append(out, r)
		}
	}
	return out
}
