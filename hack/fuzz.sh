#!/usr/bin/env bash
# Runs every fuzz target of the module (func FuzzXxx in a _test.go file) for FUZZTIME each, one after another:
# `go test -fuzz` takes one target per run. Each package's test binary is built once, with the fuzzing
# instrumentation, and run in the package's directory so that a crashing input lands in its testdata/fuzz/FuzzXxx/
# as a regression case. Every target runs even after a failure; the summary lists execs and the result of each.
#
#   FUZZTIME          how long each target runs (default 1m; a duration or Nx for N inputs)
#   FUZZMINIMIZETIME  how long a worker may minimize a new input (default 5s: go's 60s would stall slow targets)
#   FUZZ_PACKAGES     the package directories to fuzz (default: every one with a fuzz target)
set -uo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-1m}
FUZZMINIMIZETIME=${FUZZMINIMIZETIME:-5s}
module=$($GO list -m)
cache=$($GO env GOCACHE)/fuzz
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT

dirs=${FUZZ_PACKAGES:-$(grep -rl --include='*_test.go' '^func Fuzz[A-Z0-9_]' cmd internal 2>/dev/null | xargs -r -n1 dirname | sort -u)}

summary=()
failed=0
for dir in $dirs; do
  pkg=$module/${dir#./}
  targets=$(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u)
  name=$(echo "$pkg" | tr '/.' '__')
  if ! $GO test -c -fuzz . -o "$bin/$name.test" "./$dir"; then
    summary+=("$(printf '%-60s %12s  %s' "$pkg" "-" "BUILD FAILED")")
    failed=1
    continue
  fi
  for target in $targets; do
    log=$bin/$name.$target.log
    result=ok
    for try in 1 2; do
      echo "=== $pkg $target ($FUZZTIME)"
      (cd "$dir" && "$bin/$name.test" -test.run '^$' -test.fuzz "^$target\$" -test.fuzztime "$FUZZTIME" \
        -test.fuzzminimizetime "$FUZZMINIMIZETIME" -test.fuzzcachedir "$cache/$pkg") 2>&1 | tee "$log"
      rc=${PIPESTATUS[0]}
      # Go's fuzzing coordinator (go1.26) may fail a target with "context deadline exceeded" as -fuzztime ends,
      # having found nothing (golang/go#75804, fixed in go1.27). Such a run wrote no failing input: it runs once
      # more. A run that wrote one fails at once.
      if [ "$rc" -ne 0 ] && [ "$try" -eq 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written' "$log"; then
        echo "=== $pkg $target: 'context deadline exceeded' with no failing input written (golang/go#75804): once more"
        result="ok (run twice: golang/go#75804)"
        continue
      fi
      break
    done
    execs=$(grep -o 'execs: [0-9]*' "$log" | tail -1 | cut -d' ' -f2)
    if [ "$rc" -ne 0 ]; then
      result="FAIL ($(grep -o 'testdata/fuzz/[^ ]*' "$log" | head -1))"
      failed=1
    fi
    summary+=("$(printf '%-60s %-28s %10s  %s' "$pkg" "$target" "${execs:-0}" "$result")")
  done
done

echo
printf '%-60s %-28s %10s  %s\n' package target execs result
printf '%s\n' "${summary[@]}"
exit $failed
