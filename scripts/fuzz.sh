#!/usr/bin/env bash
# Runs every fuzz target for a while: `scripts/fuzz.sh 3s` in CI (short form),
# `scripts/fuzz.sh 2m` by hand (long form). Seed corpora live in each
# package's testdata/fuzz/<Target>/; a crasher found is written there too,
# so it becomes a regression test once fixed.
#
# Go 1.26's fuzz coordinator can fail a target with a bare "context deadline
# exceeded" when -fuzztime runs out while a worker is mid-call (go.dev/issue/
# 75804, fixed in Go 1.27). That failure names no input and writes none. A
# target that fails that way, and only that way, is run again with a count
# budget (-fuzztime Nx, the executions its first run reached), which has no
# deadline to race; any other failure, or one that wrote an input, fails.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-5s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# deadline_only LOG: the run's only failure is the coordinator's deadline.
deadline_only() {
  grep -q '^    context deadline exceeded$' "$1" &&
    ! grep -qE 'Failing input written to|^panic:|_test\.go:[0-9]+:' "$1" &&
    [ "$(grep -c '^--- FAIL' "$1")" = 1 ]
}

targets=$(grep -rl --include='*_test.go' '^func Fuzz' ./internal ./cmd 2>/dev/null | sort -u)
for file in $targets; do
  pkg=./$(dirname "${file#./}")
  for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "== $fn ($pkg, $time)"
    if go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$time" "$pkg" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" = 0 ]; then
      continue
    fi
    if ! deadline_only "$log"; then
      exit 1
    fi
    execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
    execs=${execs:-1000}
    [ "$execs" -ge 1000 ] || execs=1000
    echo "== $fn: the fuzz coordinator's deadline race (go.dev/issue/75804), no input written; again for ${execs}x"
    go test -run '^$' -fuzz "^${fn}\$" -fuzztime "${execs}x" "$pkg"
  done
done
