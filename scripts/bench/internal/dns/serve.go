package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"

	"github.com/orchproject/orch/dnsdisc"
)

// serve is the --serve mode: a dnsdisc server for the benchmark's
// services on addr until SIGTERM or SIGINT. It prints "ready" on stdout
// once it listens. With cpuProfile, it writes a CPU profile there until
// it stops (to see where the time goes: go tool pprof). TTL, cache and everything else are dnsdisc's defaults,
// as the agent would run it; nothing is forwarded.
func serve(addr, cpuProfile string) error {
	s, err := dnsdisc.New(dnsdisc.Config{
		Domain: domain,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	if err != nil {
		return err
	}
	defer s.Close()
	s.Update(dnsdisc.NewSnapshot(services(), nil))
	if err := s.Listen(addr); err != nil {
		return err
	}
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	fmt.Println("ready")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	<-ctx.Done()
	return nil
}
