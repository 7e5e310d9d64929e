#!/usr/bin/env bash
# Runs every fuzz target for a while: `scripts/fuzz.sh 5s` in CI (short form),
# `scripts/fuzz.sh 2m` by hand (long form). Seed corpora live in each
# package's testdata/fuzz/<Target>/; a crasher found is written there too,
# so it becomes a regression test once fixed.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-5s}
targets=$(grep -rl --include='*_test.go' '^func Fuzz' ./internal ./cmd 2>/dev/null | sort -u)
for file in $targets; do
  pkg=./$(dirname "${file#./}")
  for fn in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$file" | sed 's/^func //'); do
    echo "== $fn ($pkg, $time)"
    go test -run '^$' -fuzz "^${fn}\$" -fuzztime "$time" "$pkg"
  done
done
