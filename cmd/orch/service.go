package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/orchproject/orch/agent/api"
	"github.com/orchproject/orch/agent/spec"
)

func newServiceCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "service",
		Short: "Manage services: create, ls, inspect, ps, scale, update, rm",
		Args:  argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return usageError{errors.New("service needs a subcommand")}
		},
	}
	cmd.AddCommand(
		newServiceCreateCmd(g),
		newServiceLsCmd(g),
		newServiceInspectCmd(g),
		newServicePsCmd(g),
		newServiceScaleCmd(g),
		newServiceUpdateCmd(g),
		newServiceRmCmd(g),
	)
	return cmd
}

// readSpecFile reads and validates a spec from a file ("-" is stdin), so
// that mistakes are reported with their field paths before anything is
// sent, and returns its canonical JSON.
func readSpecFile(path string, stdin io.Reader) (*spec.Service, json.RawMessage, error) {
	var (
		data []byte
		err  error
	)
	if path == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, spec.MaxSpecSize+1))
	} else {
		var st os.FileInfo
		if st, err = os.Stat(path); err == nil && st.Size() > spec.MaxSpecSize {
			return nil, nil, fmt.Errorf("%s: spec is %d bytes, at most %d", path, st.Size(), spec.MaxSpecSize)
		}
		data, err = os.ReadFile(path)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("read spec: %w", err)
	}
	s, err := spec.Decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", path, err)
	}
	raw, err := s.Marshal()
	if err != nil {
		return nil, nil, err
	}
	return s, raw, nil
}

func newServiceCreateCmd(g *globals) *cobra.Command {
	var (
		file string
		fl   serviceFlags
	)
	cmd := &cobra.Command{
		Use:   "create [-f FILE | [FLAGS] IMAGE [ARG...]]",
		Short: "Create a service from a spec file or from docker-style flags",
		Long: `Create a service. With -f FILE (YAML or JSON, "-" for stdin) the file is the
whole spec, any number of containers. Otherwise the flags describe a service
of one container, like "docker service create": IMAGE, then its arguments.`,
		Example: `  orch service create -f sentry.yaml
  orch service create --name web --replicas 3 --port http:8080/tcp \
      --health-http /healthz:8080 --constraint node.label.zone==a busybox:stable httpd -f -p 8080`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var raw json.RawMessage
			switch {
			case file != "":
				if len(args) > 0 || fl.changed(cmd) {
					return usageError{errors.New("-f FILE describes the whole service; give no other flags or arguments")}
				}
				_, r, err := readSpecFile(file, cmd.InOrStdin())
				if err != nil {
					return err
				}
				raw = r
			default:
				if len(args) == 0 {
					return usageError{errors.New("give -f FILE, or an IMAGE")}
				}
				s, err := fl.build(args[0], args[1:])
				if err != nil {
					return err
				}
				if raw, err = s.Marshal(); err != nil {
					return err
				}
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			info, err := g.client().CreateService(ctx, raw)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s created (version %s)\n", info.Name, info.Version)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file, YAML or JSON (\"-\" for stdin)")
	fl.register(cmd, true)
	return cmd
}

func newApplyCmd(g *globals) *cobra.Command {
	var (
		file    string
		wait    bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "apply -f FILE [--wait]",
		Short: "Create or update a service from a spec file, declaratively",
		Long: `Create the service in FILE, or update it to match; an equal spec changes
nothing. With --wait, exit 0 only once every replica is in its desired state
(assigned to its node on the new version), or exit 1 at --timeout with the
reason: what a CI/CD pipeline needs.`,
		Example: `  orch apply -f sentry.yaml
  orch apply -f sentry.yaml --wait --timeout 5m`,
		Args: argsUsage(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if file == "" {
				return usageError{errors.New("apply needs -f FILE")}
			}
			s, raw, err := readSpecFile(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			res, err := g.client().ApplyService(ctx, raw)
			cancel()
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s %s (version %s)\n", res.Name, res.Action, res.Version)
			if !wait {
				return nil
			}
			return waitConverged(cmd.Context(), g, s.Name, res.Version, timeout)
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "spec file, YAML or JSON (\"-\" for stdin)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until every replica is in its desired state")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Minute, "with --wait, give up after this long")
	return cmd
}

// waitConverged polls the service's tasks until every slot is assigned on
// the given version. It gives up at once when the version can no longer
// converge: the service was removed, or another write replaced the version
// (the agent answering holds the version it returned, or a later one).
func waitConverged(ctx context.Context, g *globals, name, version string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	c := g.client() // one client, so polls reuse its connection
	var last string
	for {
		info, err := c.GetService(ctx, name)
		var tasks []api.Task
		if err == nil {
			if info.Version != version {
				return fmt.Errorf("%s changed to version %s before version %s converged (another write replaced it)", name, info.Version, version)
			}
			tasks, err = c.ServiceTasks(ctx, name)
		}
		var ae *api.Error
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusNotFound:
			return fmt.Errorf("%s was removed before it converged: %w", name, err)
		case err != nil && ctx.Err() != nil:
			// The deadline cut this poll short: keep the last answer,
			// which says why the service has not converged.
		case err != nil:
			last = err.Error()
		default:
			var waiting []string
			for _, t := range tasks {
				if (t.State == "assigned" || t.State == "running") && t.SpecVersion == version {
					continue
				}
				w := fmt.Sprintf("%s.%d: %s", name, t.Slot, t.State)
				if t.SpecVersion != "" {
					w += " on version " + t.SpecVersion
				}
				if t.Message != "" {
					w += " (" + t.Message + ")"
				}
				waiting = append(waiting, w)
			}
			if len(waiting) == 0 {
				fmt.Fprintf(g.stdout, "%s: %d/%d replicas in their desired state\n", name, len(tasks), len(tasks))
				return nil
			}
			last = strings.Join(waiting, "; ")
		}
		select {
		case <-ctx.Done():
			if !errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return ctx.Err()
			}
			if last == "" {
				last = ctx.Err().Error()
			}
			return fmt.Errorf("%s did not converge within %s: %s", name, timeout, last)
		case <-tick.C:
		}
	}
}

func newServiceLsCmd(g *globals) *cobra.Command {
	format := newFormatFlag(api.ServiceInfo{}, "table", "json")
	cmd := &cobra.Command{
		Use:     "ls",
		Aliases: []string{"list"},
		Short:   "List services",
		Long: `List the cluster's services: version, replicas assigned to a node out of
those wanted, replicas no node can take (pending), and images.`,
		Example: `  orch service ls
  orch service ls --format '{{.Name}} {{.Assigned}}/{{.Replicas}}'`,
		Args: argsUsage(cobra.NoArgs),
		RunE: listRunE(g, format, func(ctx context.Context, c *api.Client, _ []string) ([]api.ServiceInfo, error) {
			return c.ListServices(ctx)
		}, printServices),
	}
	format.register(cmd)
	return cmd
}

func printServices(w io.Writer, svcs []api.ServiceInfo) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "NAME\tVERSION\tREPLICAS\tPENDING\tIMAGE")
	for _, s := range svcs {
		fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%d\t%s\n", s.Name, s.Version, s.Assigned, s.Replicas, s.Pending, images(s.Spec))
	}
	return tw.Flush()
}

// images lists a spec's container images.
func images(raw json.RawMessage) string {
	var s struct {
		Containers []struct {
			Image string `json:"image"`
		} `json:"containers"`
	}
	if json.Unmarshal(raw, &s) != nil {
		return "-"
	}
	var out []string
	for _, c := range s.Containers {
		out = append(out, c.Image)
	}
	return strings.Join(out, ",")
}

func newServiceInspectCmd(g *globals) *cobra.Command {
	format := newFormatFlag(api.ServiceInfo{}, "json")
	cmd := &cobra.Command{
		Use:   "inspect NAME...",
		Short: "Show services' specs and versions as JSON",
		Example: `  orch service inspect web
  orch service inspect web --format '{{.Version}} {{json .Spec}}'`,
		Args:              argsUsage(cobra.MinimumNArgs(1)),
		ValidArgsFunction: completeServices(g, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := format.validate(); err != nil {
				return err
			}
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			out := make([]api.ServiceInfo, 0, len(args))
			for _, name := range args {
				s, err := g.client().GetService(ctx, name)
				if err != nil {
					return err
				}
				out = append(out, s)
			}
			return printList(g.stdout, format, out, nil) // json or a template: no table
		},
	}
	format.register(cmd)
	return cmd
}

func newServicePsCmd(g *globals) *cobra.Command {
	format := newFormatFlag(api.Task{}, "table", "json")
	cmd := &cobra.Command{
		Use:   "ps NAME",
		Short: "List a service's replica slots: node, desired and actual state",
		Long: `List a service's replica slots: the node each is assigned to, its overlay
address, the desired and actual state (with the health, when checked),
restarts, the spec version it runs and the last message.`,
		Example: `  orch service ps web
  orch service ps web --format '{{.Slot}} {{.Node}} {{.State}}'`,
		Args:              argsUsage(cobra.ExactArgs(1)),
		ValidArgsFunction: completeServices(g, false),
		RunE: listRunE(g, format, func(ctx context.Context, c *api.Client, args []string) ([]api.Task, error) {
			return c.ServiceTasks(ctx, args[0])
		}, printTasks),
	}
	format.register(cmd)
	return cmd
}

func printTasks(w io.Writer, tasks []api.Task) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "TASK\tNODE\tADDRESS\tDESIRED\tSTATE\tRESTARTS\tVERSION\tMESSAGE")
	for _, t := range tasks {
		state := t.State
		if t.Health != "" {
			state += " (" + t.Health + ")" // as docker ps shows it
		}
		fmt.Fprintf(tw, "%s.%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", t.Service, t.Slot, orDash(t.Node), orDash(t.Addr), t.Desired, state, t.Restarts, orDash(t.SpecVersion), t.Message)
	}
	return tw.Flush()
}

func newServiceScaleCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "scale NAME=REPLICAS...",
		Short:             "Change the number of replicas of services",
		Example:           "  orch service scale web=5 worker=2",
		Args:              argsUsage(cobra.MinimumNArgs(1)),
		ValidArgsFunction: completeScale(g),
		RunE: func(cmd *cobra.Command, args []string) error {
			type target struct {
				name string
				n    int
			}
			var ts []target
			for _, a := range args {
				name, num, ok := strings.Cut(a, "=")
				n, err := strconv.Atoi(num)
				if !ok || name == "" || err != nil || n < 0 {
					return usageError{fmt.Errorf("%q: want NAME=REPLICAS with REPLICAS >= 0", a)}
				}
				ts = append(ts, target{name, n})
			}
			for _, t := range ts {
				info, err := modifyService(cmd.Context(), g, t.name, func(s *spec.Service) error {
					s.Replicas = &t.n
					return nil
				})
				if err != nil {
					return err
				}
				fmt.Fprintf(g.stdout, "%s scaled to %d (version %s)\n", t.name, t.n, info.Version)
			}
			return nil
		},
	}
}

func newServiceUpdateCmd(g *globals) *cobra.Command {
	var fl serviceUpdateFlags
	cmd := &cobra.Command{
		Use:               "update NAME [FLAGS]",
		Short:             "Change a service's spec with docker-style flags",
		Example:           "  orch service update web --env-add LOG=debug --image busybox:1.36",
		Args:              argsUsage(cobra.ExactArgs(1)),
		ValidArgsFunction: completeServices(g, false),
		RunE: func(cmd *cobra.Command, args []string) error {
			info, err := modifyService(cmd.Context(), g, args[0], func(s *spec.Service) error {
				return fl.apply(cmd, s)
			})
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "%s updated (version %s)\n", info.Name, info.Version)
			return nil
		},
	}
	fl.register(cmd)
	return cmd
}

// modifyService reads a service, changes its spec and writes it back with
// the version it read, retrying when another writer came in between.
func modifyService(ctx context.Context, g *globals, name string, change func(*spec.Service) error) (api.ServiceInfo, error) {
	const attempts = 5
	for i := 0; ; i++ {
		cctx, cancel := context.WithTimeout(ctx, callTimeout)
		info, err := g.client().GetService(cctx, name)
		if err != nil {
			cancel()
			return api.ServiceInfo{}, err
		}
		s, err := spec.Decode(info.Spec)
		if err != nil {
			cancel()
			return api.ServiceInfo{}, fmt.Errorf("decode the stored spec of %s: %w", name, err)
		}
		if err := change(s); err != nil {
			cancel()
			return api.ServiceInfo{}, err
		}
		s.Normalize()
		if err := s.Validate(); err != nil {
			cancel()
			return api.ServiceInfo{}, err
		}
		raw, err := s.Marshal()
		if err != nil {
			cancel()
			return api.ServiceInfo{}, err
		}
		out, err := g.client().UpdateService(cctx, name, api.ServiceWrite{Spec: raw, BaseVersion: info.Version})
		cancel()
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status == http.StatusConflict && i+1 < attempts {
			continue
		}
		return out, err
	}
}

func newServiceRmCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:               "rm NAME...",
		Aliases:           []string{"remove"},
		Short:             "Remove services",
		Example:           "  orch service rm web worker",
		Args:              argsUsage(cobra.MinimumNArgs(1)),
		ValidArgsFunction: completeServices(g, true),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := withTimeout(cmd)
			defer cancel()
			var errs []error
			for _, name := range args {
				if err := g.client().RemoveService(ctx, name); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(g.stdout, name)
			}
			return errors.Join(errs...)
		},
	}
}

// orDash shows an empty cell as "-".
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
