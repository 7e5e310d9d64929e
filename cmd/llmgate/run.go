package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/llmgate/llmgate/internal/app"
	"github.com/llmgate/llmgate/internal/config"
)

const usage = `usage: llmgate <command> [flags]

commands:
  serve -config FILE      run the gateway
  validate -config FILE   check a config file and list every problem
  simulate -listen ADDR   run a simulated Azure OpenAI resource
  demo                    run two simulated regions behind the gateway
  version                 print the version
`

// errUsage marks a command-line mistake (exit code 2).
var errUsage = errors.New("usage")

func exitCode(err error) int {
	if errors.Is(err, errUsage) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, "llmgate", version())
		return nil
	case "simulate":
		return simulate(ctx, args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "llmgate: unknown command %q\n%s", args[0], usage)
		return errUsage
	}
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return "dev"
	}
	return bi.Main.Version
}

func configFlag(name string, args []string, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "config file (YAML)")
	if err := fs.Parse(args); err != nil {
		return "", errUsage
	}
	if *path == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: llmgate %s -config FILE\n", name)
		return "", errUsage
	}
	return *path, nil
}

func validate(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("validate", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path, app.Check)
	if err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			fmt.Fprintf(stderr, "%s: %d problem(s)\n", path, len(ce.Problems))
			for _, p := range ce.Problems {
				fmt.Fprintln(stderr, "  "+p.String())
			}
			return errors.New("invalid config")
		}
		return err
	}
	warnings := cfg.Warnings()
	fmt.Fprintf(stdout, "%s: ok (%d keys, %d backends", path, len(cfg.Keys), len(cfg.Backends))
	if len(warnings) > 0 {
		fmt.Fprintf(stdout, ", %d warning(s)", len(warnings))
	}
	fmt.Fprintln(stdout, ")")
	for _, w := range warnings {
		fmt.Fprintln(stdout, "  warning: "+w.String())
	}
	return nil
}

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	path, err := configFlag("serve", args, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, nil))
	// The access log (one JSON line per request) is batched: one write for
	// many lines, flushed every 100ms and on exit.
	access := app.NewLineWriter(stderr)
	defer access.Close()
	a, err := app.New(cfg, app.Options{Logger: logger, AccessLog: access, ConfigPath: path, Version: version()})
	if err != nil {
		return err
	}
	// SIGHUP reloads the config file; so does a change of it (Serve watches it).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	hctx, stopHup := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-hctx.Done():
				return
			case <-hup:
				_ = a.ReloadFile(path) // logged by the App, success or not
			}
		}
	})
	defer func() {
		stopHup()
		wg.Wait()
	}()
	return a.Run(ctx)
}
