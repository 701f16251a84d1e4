#!/usr/bin/env bash
# Runs every native Go fuzz target in the module for a bounded time each.
# Usage: scripts/fuzz.sh [duration]   (default 15s)
#
# A run that fails only with the fuzzing engine's "context deadline
# exceeded" (a worker that had not answered when -fuzztime ran out; no
# failing input is written) is run once more; a failing input, or the same
# failure twice, fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-15s}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    for attempt in 1 2; do
      echo "fuzz $pkg $target ($t)"
      if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$t" "$pkg" 2>&1 | tee "$out"; then
        break
      fi
      if [ "$attempt" = 1 ] && grep -q 'context deadline exceeded' "$out" && ! grep -q 'Failing input written to' "$out"; then
        echo "fuzz $target: the engine's deadline flake, no failing input; running it again"
        continue
      fi
      exit 1
    done
  done
done
