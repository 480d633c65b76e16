package runtime

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// Log rotation defaults: what a container may write before its log is
// rotated, and how many rotated files are kept.
const (
	DefaultLogMaxSize = 10 << 20
	DefaultLogKeep    = 3
)

// RotateLogs rotates every container log larger than maxSize: the file is
// copied to NAME.1 (older copies move to NAME.2 … NAME.keep, the oldest is
// dropped) and truncated in place. The shim holds the file open in append
// mode, so it goes on writing at the new end: copy-then-truncate, because
// renaming would leave the shim writing to the rotated file. Lines written
// between the copy and the truncation are lost, a window of microseconds.
func (r *Runtime) RotateLogs(maxSize int64, keep int) error {
	dir := logDir(r.cfg.StateDir)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("list logs: %w", err)
	}
	var errs []error
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".log") || e.IsDir() {
			continue
		}
		info, err := e.Info()
		if err != nil || info.Size() <= maxSize {
			continue
		}
		if err := rotate(filepath.Join(dir, name), keep); err != nil {
			errs = append(errs, err)
			continue
		}
		r.log.Debug("rotated container log", "log", name, "size", info.Size())
	}
	return errors.Join(errs...)
}

func rotate(path string, keep int) error {
	for i := keep - 1; i >= 1; i-- {
		from := fmt.Sprintf("%s.%d", path, i)
		if err := os.Rename(from, fmt.Sprintf("%s.%d", path, i+1)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("rotate %s: %w", from, err)
		}
	}
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	defer src.Close()
	dst, err := os.OpenFile(path+".1", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("rotate %s: %w", path, err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return fmt.Errorf("truncate %s: %w", path, err)
	}
	return nil
}
