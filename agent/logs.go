package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"time"

	"github.com/orchproject/orch/agent/api"
)

// logPoll is how often a followed log file is checked for new lines.
const logPoll = 200 * time.Millisecond

// maxTail bounds how much of a log file is read to find its last lines.
const maxTail = 8 << 20

// logSource is one container log of a local replica.
type logSource struct {
	prefix string // "web.0/web"
	path   string
}

func (b backend) Logs(ctx context.Context, req api.LogsRequest, emit func(api.LogLine) error) error {
	if b.a.rt == nil {
		return noRuntime()
	}
	rt, ok := b.a.rt.(interface{ LogPath(string) string })
	if !ok {
		return noRuntime()
	}
	reps, err := b.a.rt.Replicas(ctx)
	if err != nil {
		return runtimeError(err)
	}
	var srcs []logSource
	for _, r := range reps {
		if r.Service != req.Service || (req.Slot != nil && r.Slot != *req.Slot) {
			continue
		}
		for _, c := range r.Containers {
			srcs = append(srcs, logSource{prefix: fmt.Sprintf("%s.%d/%s", r.Service, r.Slot, c.Name), path: rt.LogPath(c.ID)})
		}
	}
	if len(srcs) == 0 {
		return api.Errorf(http.StatusNotFound, "no replica of %s runs on this node (logs are per node: ask the node that runs it; see \"orch service ps\")", req.Service)
	}
	sort.Slice(srcs, func(i, j int) bool { return srcs[i].prefix < srcs[j].prefix })
	offsets := make([]int64, len(srcs))
	for i, s := range srcs {
		off, err := tailFile(s, req.Tail, emit)
		if err != nil {
			return err
		}
		offsets[i] = off
	}
	if !req.Follow {
		return nil
	}
	tick := time.NewTicker(logPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		for i, s := range srcs {
			off, err := followFile(s, offsets[i], emit)
			if err != nil {
				return err
			}
			offsets[i] = off
		}
	}
}

// tailFile emits the last n lines of a log (all with n < 0) and returns
// the offset reached.
func tailFile(s logSource, n int, emit func(api.LogLine) error) (int64, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	start := max(st.Size()-maxTail, 0)
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return 0, err
	}
	data, err := io.ReadAll(io.LimitReader(f, st.Size()-start))
	if err != nil {
		return 0, err
	}
	end := start + int64(len(data))
	// Only whole lines; a partial last line is read when it completes.
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		end = start + int64(i) + 1
		data = data[:i]
	} else {
		return start, nil
	}
	lines := bytes.Split(data, []byte{'\n'})
	if n >= 0 && len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	for _, l := range lines {
		if err := emit(api.LogLine{Source: s.prefix, Line: string(l)}); err != nil {
			return end, err
		}
	}
	return end, nil
}

// followFile emits whole lines written after off and returns the new offset.
func followFile(s logSource, off int64, emit func(api.LogLine) error) (int64, error) {
	f, err := os.Open(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return off, nil
	}
	if err != nil {
		return off, err
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() < off {
		off = 0 // truncated
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return off, err
	}
	br := bufio.NewReader(f)
	for {
		line, err := br.ReadBytes('\n')
		if err != nil {
			return off, nil // a partial line waits for its end
		}
		off += int64(len(line))
		if err := emit(api.LogLine{Source: s.prefix, Line: string(bytes.TrimSuffix(line, []byte{'\n'}))}); err != nil {
			return off, err
		}
	}
}
