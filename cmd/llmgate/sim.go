package main

import (
	"context"
	"io"

	"github.com/llmgate/llmgate/internal/demo"
	"github.com/llmgate/llmgate/internal/sim"
)

func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return sim.Run(ctx, args, stdout, stderr)
}

func demoCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return demo.Run(ctx, args, stdout, stderr)
}
