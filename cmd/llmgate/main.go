// Command llmgate is a gateway for Azure OpenAI and OpenAI deployments.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

func main() {
	tuneGC()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "llmgate:", err)
		stop()
		os.Exit(exitCode(err))
	}
}

// gcPercent is the collector's target when GOGC is not set. A gateway's
// live heap is small (about 1 MiB under load) while it allocates a few KiB
// per request, so at Go's default (100, where the 4 MiB floor of the heap
// goal sets the pace) it collects some 75 times a second at 20 000
// requests per second, a tenth of its CPU. At 200 it collects half as
// often, for at most 4 MiB more heap. GOGC and GOMEMLIMIT, when set, decide.
const gcPercent = 200

func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(gcPercent)
	}
}
