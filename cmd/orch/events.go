package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
)

func newEventsCmd(g *globals) *cobra.Command {
	var (
		filters []string
		since   time.Duration
		after   uint64
	)
	format := newFormatFlag(api.Event{}, "json", "pretty")
	cmd := &cobra.Command{
		Use:   "events",
		Short: "Stream the agent's events as newline-delimited JSON, or pretty lines",
		Long: `Stream the agent's events, one JSON object per line, until interrupted:
  {"time":"…","seq":12,"type":"member","action":"failed","node":"n1","subject":"n3","attributes":{…}}

time is RFC 3339 in UTC with nanoseconds; seq grows by one per event on this
agent (it restarts at 1 when the agent restarts), so a client that reconnects
can resume with --after SEQ. --since replays retained events younger than the
duration (the agent keeps the last 4096). A reader too slow for the stream gets
{"type":"stream","action":"lagged",…} with the count of events it missed.

--format pretty prints one aligned line per event for people: local time,
node, type/action, subject and the attributes sorted by key, coloured by type
on a terminal (not when piped, nor when NO_COLOR is set); a lagged marker
becomes a warning line. --format '{{.Type}} {{.Subject}}' runs a Go template
per event.

Filters (repeatable): type=, action=, subject=, node=. The same key repeated
matches any of its values; different keys must all match.`,
		Example: `  orch events --filter type=member --filter action=failed
  orch events --since 10m --format pretty
  orch events --after 41
  orch events --format '{{.Time}} {{.Subject}} {{.Attributes.reason}}'`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if since > 0 && after > 0 {
				return usageError{errors.New("use either --since or --after, not both")}
			}
			if err := format.validate(); err != nil {
				return err
			}
			var emit func(api.Event) error
			switch {
			case format.is("pretty"):
				p := &prettyPrinter{w: g.stdout, colour: wantColour(isTerminal(g.stdout), os.Getenv), loc: time.Local}
				emit = p.print
			case format.is("json"):
				enc := json.NewEncoder(g.stdout)
				emit = func(ev api.Event) error { return enc.Encode(ev) }
			default:
				emit = func(ev api.Event) error { return format.execute(g.stdout, []any{ev}) }
			}
			err := g.client().Events(cmd.Context(), api.EventsRequest{Filters: filters, After: after, Since: since}, emit)
			if err != nil && cmd.Context().Err() != nil {
				return nil // interrupted: not an error
			}
			if err != nil {
				return err
			}
			if cmd.Context().Err() == nil {
				return fmt.Errorf("the agent closed the event stream (it is shutting down)")
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVar(&filters, "filter", nil, "KEY=VALUE with KEY one of type, action, subject, node (repeatable)")
	cmd.Flags().DurationVar(&since, "since", 0, "replay retained events younger than this (e.g. 10m) before streaming")
	cmd.Flags().Uint64Var(&after, "after", 0, "replay retained events with seq greater than this before streaming")
	format.register(cmd)
	_ = cmd.RegisterFlagCompletionFunc("filter", completeEventFilter)
	return cmd
}

// SGR colours of the pretty format: the normal (not bright) ones, which
// terminal themes keep readable on dark and light backgrounds, except
// blue, whose normal shade is too dark on black.
const (
	sgrReset   = "\x1b[0m"
	sgrBold    = "\x1b[1m"
	sgrRed     = "\x1b[31m"
	sgrGreen   = "\x1b[32m"
	sgrYellow  = "\x1b[33m"
	sgrMagenta = "\x1b[35m"
	sgrCyan    = "\x1b[36m"
	sgrBlue    = "\x1b[94m"
	sgrWarning = "\x1b[1;31m" // bold red: events were lost
)

// typeColours colour the type/action column by event type.
var typeColours = map[string]string{
	"member":  sgrCyan,
	"task":    sgrGreen,
	"health":  sgrYellow,
	"node":    sgrMagenta,
	"network": sgrBlue,
	"service": sgrBold,
}

// failureActions are shown in red whatever their type: something broke.
var failureActions = map[string]bool{
	"failed":          true,
	"unhealthy":       true,
	"unavailable":     true,
	"rolledback":      true,
	"ineligible":      true,
	"minority":        true,
	"subnet-conflict": true,
}

// eventColour is the colour of an event's type/action, "" for none.
func eventColour(ev api.Event) string {
	if failureActions[ev.Action] {
		return sgrRed
	}
	return typeColours[ev.Type]
}

// Minimum widths of the pretty format's padded columns, wide enough for
// most values so that the columns rarely move.
const (
	minNodeWidth    = 8
	minTypeWidth    = 18 // "task/unassigned", "health/unhealthy"
	minSubjectWidth = 12
)

// prettyPrinter writes events as aligned lines for people. A stream has no
// end to measure, so each padded column keeps the widest value seen so far:
// lines stay aligned, and a wider value moves the columns only once.
type prettyPrinter struct {
	w      io.Writer
	colour bool
	loc    *time.Location // time zone of the times shown

	node, kind, subject int // column widths so far
}

// print writes one event: "15:04:05.000  NODE  TYPE/ACTION  SUBJECT  k=v …".
func (p *prettyPrinter) print(ev api.Event) error {
	var b strings.Builder
	b.WriteString(ev.Time.In(p.loc).Format("15:04:05.000"))
	b.WriteString("  ")
	p.node = max(p.node, minNodeWidth, len(ev.Node))
	pad(&b, orDash(ev.Node), p.node, "")
	b.WriteString("  ")
	if ev.Type == "stream" && ev.Action == "lagged" {
		msg := laggedMessage(ev)
		if p.colour {
			msg = sgrWarning + msg + sgrReset
		}
		b.WriteString(msg)
		b.WriteByte('\n')
		_, err := io.WriteString(p.w, b.String())
		return err
	}
	kind := ev.Type + "/" + ev.Action
	p.kind = max(p.kind, minTypeWidth, len(kind))
	colour := ""
	if p.colour {
		colour = eventColour(ev)
	}
	pad(&b, kind, p.kind, colour)
	b.WriteString("  ")
	attrs := formatAttributes(ev.Attributes)
	if attrs == "" {
		b.WriteString(orDash(ev.Subject))
	} else {
		p.subject = max(p.subject, minSubjectWidth, len(ev.Subject))
		pad(&b, orDash(ev.Subject), p.subject, "")
		b.WriteString("  ")
		b.WriteString(attrs)
	}
	b.WriteByte('\n')
	_, err := io.WriteString(p.w, b.String())
	return err
}

// pad writes s, in colour if one is given, then spaces up to width.
func pad(b *strings.Builder, s string, width int, colour string) {
	if colour != "" {
		b.WriteString(colour + s + sgrReset)
	} else {
		b.WriteString(s)
	}
	b.WriteString(strings.Repeat(" ", max(0, width-len(s))))
}

// laggedMessage is the warning a lagged marker becomes.
func laggedMessage(ev api.Event) string {
	missed, first, last := ev.Attributes["missed"], ev.Attributes["first_seq"], ev.Attributes["last_seq"]
	if missed == "" {
		return "WARNING: events were lost: this reader fell behind the stream " + formatAttributes(ev.Attributes)
	}
	events := "events"
	if missed == "1" {
		events = "event"
	}
	return fmt.Sprintf("WARNING: missed %s %s (seq %s-%s): this reader fell behind the stream", missed, events, first, last)
}

// formatAttributes writes attributes as "k=v k=v", sorted by key, quoting
// values that are empty or hold spaces, quotes, '=' or unprintable
// characters, as logfmt does.
func formatAttributes(attrs map[string]string) string {
	parts := make([]string, 0, len(attrs))
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		parts = append(parts, k+"="+quoteValue(attrs[k]))
	}
	return strings.Join(parts, " ")
}

func quoteValue(v string) string {
	if v == "" || strings.ContainsFunc(v, func(r rune) bool {
		return r == ' ' || r == '"' || r == '=' || !unicode.IsPrint(r)
	}) {
		return strconv.Quote(v)
	}
	return v
}

// completeEventFilter offers the filter keys, then the known event types
// after "type=".
func completeEventFilter(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	if !strings.Contains(toComplete, "=") {
		return []cobra.Completion{"type=", "action=", "subject=", "node="}, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
	}
	var out []cobra.Completion
	for _, t := range []string{"member", "service", "task", "node", "health", "network", "image"} {
		out = append(out, "type="+t)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
