// Package scripts holds the tests of the repository's shell scripts.
package scripts

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The output of a target that hit Go 1.26's fuzz-coordinator deadline race
// (go.dev/issue/75804): one FAIL, a bare "context deadline exceeded", no input.
const raceOutput = `fuzz: elapsed: 0s, gathering baseline coverage: 0/12 completed
fuzz: elapsed: 0s, gathering baseline coverage: 12/12 completed, now fuzzing with 2 workers
fuzz: elapsed: 3s, execs: %EXECS% (13822/sec), new interesting: 0 (total: 12)
--- FAIL: FuzzA (3.02s)
    context deadline exceeded
FAIL
exit status 1
FAIL	example.com/m/internal/a	3.110s
`

// A real failure: the engine wrote the failing input.
const crashOutput = `fuzz: elapsed: 0s, gathering baseline coverage: 0/12 completed
fuzz: elapsed: 1s, execs: 5000 (5000/sec), new interesting: 1 (total: 13)
--- FAIL: FuzzA (1.20s)
    --- FAIL: FuzzA (0.00s)
        a_test.go:12: boom

    Failing input written to testdata/fuzz/FuzzA/0123456789abcdef
    To re-run:
    go test -run=FuzzA/0123456789abcdef
FAIL
exit status 1
FAIL	example.com/m/internal/a	1.300s
`

// A race-shaped failure that also panicked: not the engine's race.
const panicOutput = `--- FAIL: FuzzA (3.02s)
    context deadline exceeded
panic: runtime error: index out of range [3] with length 3
FAIL
exit status 2
`

// fakeGo is a stand-in for the go command: it logs its arguments, and for a
// fuzz run prints $FAKE_OUT (and fails) unless the budget is a count (Nx) and
// $FAKE_COUNT_OK is set.
const fakeGo = `#!/usr/bin/env bash
echo "$*" >>"$FAKE_LOG"
budget=
while [ $# -gt 0 ]; do
  if [ "$1" = -fuzztime ]; then budget=$2; fi
  shift
done
case $budget in
  *x) [ -n "${FAKE_COUNT_OK:-}" ] && { echo ok; exit 0; } ;;
esac
if [ -n "${FAKE_OUT:-}" ]; then cat "$FAKE_OUT"; exit 1; fi
echo ok
`

type fuzzRun struct {
	err   error
	out   string
	calls []string
}

// runFuzzScript runs a copy of fuzz.sh in a scratch tree with one fuzz target
// (FuzzA in internal/a) and the fake go command first on PATH.
func runFuzzScript(t *testing.T, output string, countOK bool) fuzzRun {
	t.Helper()
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("bash is not installed")
	}
	script, err := os.ReadFile("fuzz.sh")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	write := func(rel, body string, mode os.FileMode) string {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	write("scripts/fuzz.sh", string(script), 0o755)
	write("internal/a/a_test.go", "package a\n\nimport \"testing\"\n\nfunc FuzzA(f *testing.F) {}\n", 0o644)
	write("cmd/x/main.go", "package main\n\nfunc main() {}\n", 0o644)
	write("bin/go", fakeGo, 0o755)
	logPath := filepath.Join(root, "calls.log")

	cmd := exec.Command("bash", filepath.Join(root, "scripts/fuzz.sh"), "3s")
	cmd.Env = append(os.Environ(),
		"PATH="+filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"),
		"FAKE_LOG="+logPath,
	)
	if output != "" {
		cmd.Env = append(cmd.Env, "FAKE_OUT="+write("out.txt", output, 0o644))
	}
	if countOK {
		cmd.Env = append(cmd.Env, "FAKE_COUNT_OK=1")
	}
	out, err := cmd.CombinedOutput()
	logged, _ := os.ReadFile(logPath)
	var calls []string
	if s := strings.TrimSpace(string(logged)); s != "" {
		calls = strings.Split(s, "\n")
	}
	return fuzzRun{err: err, out: string(out), calls: calls}
}

func TestFuzzScript(t *testing.T) {
	t.Run("a passing target runs once", func(t *testing.T) {
		r := runFuzzScript(t, "", false)
		if r.err != nil {
			t.Fatalf("exit: %v\n%s", r.err, r.out)
		}
		if len(r.calls) != 1 || !strings.Contains(r.calls[0], "-fuzz ^FuzzA$ -fuzztime 3s ./internal/a") {
			t.Fatalf("calls = %q", r.calls)
		}
	})

	t.Run("the deadline race is run again with the executions it reached", func(t *testing.T) {
		r := runFuzzScript(t, strings.ReplaceAll(raceOutput, "%EXECS%", "41469"), true)
		if r.err != nil {
			t.Fatalf("exit: %v\n%s", r.err, r.out)
		}
		if len(r.calls) != 2 || !strings.Contains(r.calls[1], "-fuzztime 41469x") {
			t.Fatalf("calls = %q", r.calls)
		}
		if !strings.Contains(r.out, "go.dev/issue/75804") {
			t.Errorf("the rerun is not explained:\n%s", r.out)
		}
	})

	t.Run("a short race run is run again for at least 1000 executions", func(t *testing.T) {
		r := runFuzzScript(t, strings.ReplaceAll(raceOutput, "%EXECS%", "12"), true)
		if r.err != nil {
			t.Fatalf("exit: %v\n%s", r.err, r.out)
		}
		if len(r.calls) != 2 || !strings.Contains(r.calls[1], "-fuzztime 1000x") {
			t.Fatalf("calls = %q", r.calls)
		}
	})

	t.Run("the rerun's own failure fails", func(t *testing.T) {
		r := runFuzzScript(t, strings.ReplaceAll(raceOutput, "%EXECS%", "41469"), false)
		if r.err == nil || len(r.calls) != 2 {
			t.Fatalf("exit %v after calls %q, want a failure after the rerun", r.err, r.calls)
		}
	})

	for name, output := range map[string]string{
		"a failing input written": crashOutput,
		"a panic":                 panicOutput,
		"two failures":            raceOutput + strings.Replace(raceOutput, "FuzzA", "FuzzA/sub", 1),
	} {
		t.Run(name+" fails at once", func(t *testing.T) {
			r := runFuzzScript(t, strings.ReplaceAll(output, "%EXECS%", "41469"), true)
			if r.err == nil {
				t.Fatalf("exit 0, want a failure:\n%s", r.out)
			}
			if len(r.calls) != 1 || !strings.Contains(r.calls[0], "-fuzztime 3s") {
				t.Fatalf("calls = %q, want the one run and no rerun", r.calls)
			}
		})
	}
}
