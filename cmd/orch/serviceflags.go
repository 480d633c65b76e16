package main

import (
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/orchproject/orch/agent/spec"
)

// serviceFlags are `orch service create`'s docker-style flags.
type serviceFlags struct {
	f                                                   spec.Flags
	replicas, healthRetries, restartMax, updateParallel int
}

func (s *serviceFlags) register(cmd *cobra.Command, withName bool) {
	fl := cmd.Flags()
	f := &s.f
	if withName {
		fl.StringVar(&f.Name, "name", "", "service name, a DNS label (required)")
	}
	fl.IntVar(&s.replicas, "replicas", spec.DefaultReplicas, "number of replicas")
	fl.StringArrayVarP(&f.Env, "env", "e", nil, "environment variable NAME=VALUE (repeatable)")
	fl.StringArrayVar(&f.Secrets, "secret", nil, "give the container a secret as a file in /run/secrets: NAME or source=NAME[,target=FILE][,uid=N][,gid=N] (repeatable)")
	fl.StringArrayVarP(&f.Ports, "port", "p", nil, "port [NAME:]PORT[/PROTO] (repeatable)")
	fl.StringArrayVar(&f.Constraints, "constraint", nil, "placement constraint, e.g. node.label.zone==a (repeatable)")
	fl.StringArrayVarP(&f.Labels, "label", "l", nil, "service label KEY=VALUE (repeatable)")
	fl.StringVar(&f.Entrypoint, "entrypoint", "", "replace the image's entrypoint")
	fl.StringVarP(&f.User, "user", "u", "", "user: USER, UID, USER:GROUP or UID:GID")
	fl.StringVarP(&f.Workdir, "workdir", "w", "", "working directory (absolute)")
	fl.BoolVar(&f.ReadOnly, "read-only", false, "mount the root file system read-only")
	fl.StringVar(&f.Memory, "memory", "", "memory limit, e.g. 256Mi")
	fl.StringVar(&f.CPUs, "cpus", "", "CPU limit, e.g. 0.5")
	fl.StringVar(&f.HealthCmd, "health-cmd", "", "health check: a shell command run in the container")
	fl.StringVar(&f.HealthHTTP, "health-http", "", "health check: HTTP GET PATH:PORT")
	fl.IntVar(&f.HealthTCP, "health-tcp", 0, "health check: connect to PORT")
	fl.StringVar(&f.HealthInterval, "health-interval", "", "time between health checks (e.g. 30s)")
	fl.StringVar(&f.HealthTimeout, "health-timeout", "", "time a health check may take")
	fl.StringVar(&f.HealthStartPeriod, "health-start-period", "", "grace period before failed checks count")
	fl.StringVar(&f.HealthStartInterval, "health-start-interval", "", "time between checks during the start period, until the first success (default 5s, or --health-interval if shorter)")
	fl.IntVar(&s.healthRetries, "health-retries", 3, "consecutive failures before unhealthy")
	fl.BoolVar(&f.NoHealthcheck, "no-healthcheck", false, "disable the image's HEALTHCHECK")
	fl.StringVar(&f.RestartCondition, "restart-condition", "", "restart: always, on-failure or none")
	fl.IntVar(&s.restartMax, "restart-max-attempts", 0, "restart attempts before giving up (0: unlimited)")
	fl.StringVar(&f.RestartDelay, "restart-delay", "", "delay between restarts (e.g. 5s)")
	fl.IntVar(&s.updateParallel, "update-parallelism", 1, "replicas updated at once (0: all)")
	fl.StringVar(&f.UpdateDelay, "update-delay", "", "delay between updates")
	fl.StringVar(&f.UpdateOrder, "update-order", "", "stop-first or start-first")
	fl.StringVar(&f.UpdateFailureAction, "update-failure-action", "", "pause, continue or rollback")
	// Flags that stop at the first positional argument: the rest belongs
	// to the container, like `docker service create IMAGE ARG...`.
	fl.SetInterspersed(false)
}

// changed reports whether any of the spec-building flags was given.
func (s *serviceFlags) changed(cmd *cobra.Command) bool {
	any := false
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Name != "file" && f.Name != "socket" {
			any = true
		}
	})
	return any
}

func (s *serviceFlags) build(image string, args []string) (*spec.Service, error) {
	f := s.f
	f.Image = image
	f.Command = args
	f.Replicas = &s.replicas
	f.HealthRetries = &s.healthRetries
	f.RestartMaxAttempts = &s.restartMax
	f.UpdateParallelism = &s.updateParallel
	return spec.BuildFromFlags(f)
}

// serviceUpdateFlags are `orch service update`'s flags.
type serviceUpdateFlags struct {
	f        spec.UpdateFlags
	replicas int
}

func (s *serviceUpdateFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	f := &s.f
	fl.IntVar(&s.replicas, "replicas", 0, "number of replicas")
	fl.StringVar(&f.Image, "image", "", "the container's image")
	fl.StringArrayVar(&f.EnvAdd, "env-add", nil, "set an environment variable NAME=VALUE (repeatable)")
	fl.StringArrayVar(&f.EnvRm, "env-rm", nil, "remove an environment variable (repeatable)")
	fl.StringArrayVar(&f.SecretAdd, "secret-add", nil, "add a secret file: NAME or source=NAME[,target=FILE][,uid=N][,gid=N] (repeatable)")
	fl.StringArrayVar(&f.SecretRm, "secret-rm", nil, "remove a secret's file by secret NAME (repeatable)")
	fl.StringArrayVar(&f.LabelAdd, "label-add", nil, "set a service label KEY=VALUE (repeatable)")
	fl.StringArrayVar(&f.LabelRm, "label-rm", nil, "remove a service label (repeatable)")
	fl.StringArrayVar(&f.ConstraintAdd, "constraint-add", nil, "add a placement constraint (repeatable)")
	fl.StringArrayVar(&f.ConstraintRm, "constraint-rm", nil, "remove a placement constraint (repeatable)")
	fl.StringArrayVar(&f.PortAdd, "port-add", nil, "add a port [NAME:]PORT[/PROTO] (repeatable)")
	fl.StringArrayVar(&f.PortRm, "port-rm", nil, "remove a port by NAME, PORT or PORT/PROTO (repeatable)")
}

// apply changes s in place as the flags say.
func (s *serviceUpdateFlags) apply(cmd *cobra.Command, svc *spec.Service) error {
	f := s.f
	if cmd.Flags().Changed("replicas") {
		f.Replicas = &s.replicas
	}
	out, err := spec.ApplyUpdate(svc, f)
	if err != nil {
		return err
	}
	*svc = *out
	return nil
}
