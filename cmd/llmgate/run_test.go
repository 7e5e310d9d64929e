package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// stopped is a context already done: help and usage mistakes never start
// the command, and one that would (a regression) stops at once instead of
// serving until the test ends.
func stopped(t *testing.T) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	return ctx
}

// TestHelp: help of the top level and of every command, in every spelling,
// goes to stdout and exits 0 with nothing on stderr, through report(run(...))
// as in main.
func TestHelp(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string // in stdout
	}{
		{[]string{"-h"}, "usage: llmgate <command>"},
		{[]string{"-help"}, "usage: llmgate <command>"},
		{[]string{"--help"}, "usage: llmgate <command>"},
		{[]string{"help"}, "usage: llmgate <command>"},
		{[]string{"help", "serve"}, "Usage: llmgate serve -config FILE"},
		{[]string{"help", "demo"}, "Usage: llmgate demo"},
		{[]string{"serve", "-h"}, "Usage: llmgate serve -config FILE"},
		{[]string{"serve", "--help"}, "Usage: llmgate serve -config FILE"},
		{[]string{"serve", "-config", "x.yaml", "-help"}, "Usage: llmgate serve -config FILE"},
		{[]string{"validate", "-h"}, "Usage: llmgate validate -config FILE"},
		{[]string{"validate", "--help"}, "Usage: llmgate validate -config FILE"},
		{[]string{"simulate", "-h"}, "Usage: llmgate simulate"},
		{[]string{"simulate", "--help"}, "-fail-429-retry-after"},
		{[]string{"demo", "-h"}, "Usage: llmgate demo"},
		{[]string{"demo", "-help"}, "-retry-mode"},
		{[]string{"version", "-h"}, "Usage: llmgate version"},
		{[]string{"version", "--help"}, "Usage: llmgate version"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := report(run(stopped(t), tc.args, &stdout, &stderr), &stderr)
			if code != 0 || stderr.Len() > 0 || !strings.Contains(stdout.String(), tc.want) {
				t.Errorf("got exit %d, stderr %q, stdout %q; want 0, nothing, a usage with %q", code, stderr.String(), stdout.String(), tc.want)
			}
		})
	}
}

// TestUsageMistakes: a wrong command line exits 2 with the problem and the
// usage on stderr, nothing on stdout, and no extra "llmgate: ..." line.
func TestUsageMistakes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []string // in stderr
	}{
		{nil, []string{"usage: llmgate <command>"}},
		{[]string{"bogus"}, []string{`unknown command "bogus"`, "usage: llmgate <command>"}},
		{[]string{"serve"}, []string{"-config is required", "Usage: llmgate serve -config FILE"}},
		{[]string{"serve", "-nope"}, []string{"not defined: -nope", "Usage: llmgate serve"}},
		{[]string{"validate", "-config", "a.yaml", "b.yaml"}, []string{"unexpected arguments", "Usage: llmgate validate"}},
		{[]string{"simulate", "-nope"}, []string{"not defined: -nope", "Usage: llmgate simulate"}},
		{[]string{"simulate", "-tpm", "many"}, []string{"-tpm", "Usage: llmgate simulate"}},
		{[]string{"demo", "-nope"}, []string{"not defined: -nope", "Usage: llmgate demo"}},
		{[]string{"demo", "extra"}, []string{"unexpected arguments", "Usage: llmgate demo"}},
		{[]string{"version", "extra"}, []string{"unexpected arguments", "Usage: llmgate version"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			var stdout, stderr bytes.Buffer
			code := report(run(stopped(t), tc.args, &stdout, &stderr), &stderr)
			if code != 2 || stdout.Len() > 0 {
				t.Errorf("got exit %d, stdout %q; want 2, nothing", code, stdout.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("stderr %q: want %q in it", stderr.String(), w)
				}
			}
			if strings.Contains(stderr.String(), "llmgate: usage") || strings.Contains(stderr.String(), "help requested") {
				t.Errorf("stderr %q: got an error line after the usage", stderr.String())
			}
		})
	}
}

// TestReportOtherErrors: a failure that is not a command-line mistake is
// written once and exits 1.
func TestReportOtherErrors(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	code := report(run(t.Context(), []string{"validate", "-config", t.TempDir() + "/missing.yaml"}, &stdout, &stderr), &stderr)
	if code != 1 || !strings.HasPrefix(stderr.String(), "llmgate: ") || strings.Count(stderr.String(), "\n") != 1 {
		t.Errorf("got exit %d, stderr %q; want 1 and one llmgate: line", code, stderr.String())
	}
}
