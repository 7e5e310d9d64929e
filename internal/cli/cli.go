// Package cli parses the flags of llmgate's commands the same way
// everywhere: help to stdout, mistakes (with the usage) to stderr.
package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
)

// ErrUsage marks a command line that is wrong (an unknown flag, a value that
// does not parse, an unexpected argument). The command has already written
// what was wrong, with its usage, to stderr.
var ErrUsage = errors.New("usage")

// ParseFlags parses a command's args with fs as every llmgate command does.
// -h, -help or --help writes the usage to stdout and returns flag.ErrHelp.
// A mistake (including any argument that is not a flag: no command takes
// one) writes the problem and the usage to stderr and returns an error
// wrapping ErrUsage. fs's output is stderr afterwards.
func ParseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	var out bytes.Buffer
	fs.SetOutput(&out)
	err := fs.Parse(args)
	fs.SetOutput(stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		_, _ = out.WriteTo(stdout)
		return flag.ErrHelp
	case err != nil:
		_, _ = out.WriteTo(stderr)
		return fmt.Errorf("%s: %w: %w", fs.Name(), ErrUsage, err)
	case fs.NArg() > 0:
		fmt.Fprintf(stderr, "unexpected arguments %q\n", fs.Args())
		fs.Usage()
		return fmt.Errorf("%s: %w: unexpected arguments %q", fs.Name(), ErrUsage, fs.Args())
	}
	return nil
}
