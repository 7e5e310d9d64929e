package main

import (
	"context"
	"errors"
	"io"
)

func simulate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("simulate: not built yet")
}

func demo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("demo: not built yet")
}
