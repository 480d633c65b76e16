package benchkit

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// AppendCSV appends body, CSV text whose first line is the header, to the
// file at path, creating it and its directory if need be; the header is
// left out if the file already has content. The results directory keeps
// every run this way.
func AppendCSV(path, body string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if st, _ := f.Stat(); st != nil && st.Size() > 0 {
		_, body, _ = strings.Cut(body, "\n")
	}
	if _, err := io.WriteString(f, body); err != nil {
		f.Close()
		return fmt.Errorf("append to %s: %w", path, err)
	}
	return f.Close()
}

// AppendCSVRows is [AppendCSV] for rows, the first of which is the header.
func AppendCSVRows(path string, rows [][]string) error {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	w.WriteAll(rows) // flushes
	if err := w.Error(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return AppendCSV(path, b.String())
}

// WriteCSV writes rows, the first of which is the header, to the file at
// path, replacing it; it creates the directory if need be.
func WriteCSV(path string, rows [][]string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	w.WriteAll(rows) // flushes
	if err := w.Error(); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
