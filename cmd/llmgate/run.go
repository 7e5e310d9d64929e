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
	"github.com/llmgate/llmgate/internal/cli"
	"github.com/llmgate/llmgate/internal/config"
)

const usage = `usage: llmgate <command> [flags]

commands:
  serve -config FILE      run the gateway
  validate -config FILE   check a config file and list every problem
  simulate -listen ADDR   run a simulated Azure OpenAI resource
  demo                    run two simulated regions behind the gateway
  version                 print the version
  help [command]          print this, or a command's usage

'llmgate <command> -h' prints a command's flags.
`

// report writes err to stderr for main and returns the exit code: 0 for
// nil or a request for help, 2 for a command-line mistake (which the
// command has already explained, with its usage), 1 for anything else.
func report(err error, stderr io.Writer) int {
	switch {
	case err == nil || errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, cli.ErrUsage):
		return 2
	}
	fmt.Fprintln(stderr, "llmgate:", err)
	return 1
}

// run runs the command in args. Help (-h, -help, --help, on its own or
// after a command) goes to stdout; mistakes and their usage to stderr.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return fmt.Errorf("%w: no command", cli.ErrUsage)
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], stdout, stderr)
	case "validate":
		return validate(args[1:], stdout, stderr)
	case "version":
		return versionCmd(args[1:], stdout, stderr)
	case "-version", "--version":
		fmt.Fprintln(stdout, "llmgate", version())
		return nil
	case "simulate":
		return simulate(ctx, args[1:], stdout, stderr)
	case "demo":
		return demoCmd(ctx, args[1:], stdout, stderr)
	case "help", "-h", "-help", "--help":
		if args[0] == "help" && len(args) > 1 {
			return run(ctx, []string{args[1], "-h"}, stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return nil
	default:
		fmt.Fprintf(stderr, "llmgate: unknown command %q\n%s", args[0], usage)
		return fmt.Errorf("%w: unknown command %q", cli.ErrUsage, args[0])
	}
}

func versionCmd(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("version", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprintln(fs.Output(), "Usage: llmgate version\n\nPrints the version.") }
	if err := cli.ParseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "llmgate", version())
	return nil
}

func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok || bi.Main.Version == "" || bi.Main.Version == "(devel)" {
		return "dev"
	}
	return bi.Main.Version
}

// configFlag parses the -config flag of command name, which about describes.
func configFlag(name, about string, args []string, stdout, stderr io.Writer) (string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	path := fs.String("config", "", "config `FILE` (YAML), required")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: llmgate %s -config FILE\n\n%s\n\nFlags:\n", name, about)
		fs.PrintDefaults()
	}
	if err := cli.ParseFlags(fs, args, stdout, stderr); err != nil {
		return "", err
	}
	if *path == "" {
		fmt.Fprintln(stderr, "-config is required")
		fs.Usage()
		return "", fmt.Errorf("%s: %w: -config is required", name, cli.ErrUsage)
	}
	return *path, nil
}

func validate(args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("validate", "Checks the config file and lists every problem (and warning); exits 1 if there is a problem.", args, stdout, stderr)
	if err != nil {
		return err
	}
	cfg, err := config.Load(path, app.Check, app.CheckTLS)
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

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	path, err := configFlag("serve", "Runs the gateway. SIGHUP, or a change of the file, reloads the config; SIGINT or SIGTERM drains and stops it.", args, stdout, stderr)
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
