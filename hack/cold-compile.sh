#!/usr/bin/env bash
# Times the compiles of kubeboot's side of `make test` from an empty Go build cache, with the Makefile's flags:
# labbuild, kubeboot (as the lab builds it), go vet, the race tests' binaries, lab, the e2e test binary. The
# upstream components (make lab-build-all) are not in it. Usage: hack/cold-compile.sh [cache dir]
set -euo pipefail
cd "$(dirname "$0")/.."
# The Makefile adds -gcflags=all=-dwarf=false to GOFLAGS; COLD_COMPILE_GOFLAGS replaces that (empty: with DWARF).
export GOFLAGS="${GOFLAGS:--buildvcs=false} ${COLD_COMPILE_GOFLAGS--gcflags=all=-dwarf=false}"
export GOCACHE=${1:-/tmp/kubeboot-cold-compile}
rm -rf "$GOCACHE"
trap 'rm -rf "$GOCACHE"' EXIT
step() {
  local s e
  s=$(date +%s.%N)
  "$@" >/dev/null
  e=$(date +%s.%N)
  awk -v s="$s" -v e="$e" -v c="$*" 'BEGIN { printf "%7.1fs  %s\n", e - s, c }'
}
start=$(date +%s)
step env CGO_ENABLED=0 go build -o /dev/null ./lab/cmd/labbuild
step env CGO_ENABLED=0 go build -o /dev/null ./cmd/kubeboot
step env CGO_ENABLED=1 go vet -race ./...
step env CGO_ENABLED=1 go vet -race -tags e2e ./test/e2e
step env CGO_ENABLED=1 go test -race -count=1 -run '^$' ./...
step env CGO_ENABLED=0 go build -o /dev/null ./lab/cmd/lab
step env CGO_ENABLED=0 go test -tags e2e -c -o /dev/null ./test/e2e
echo "total $(( $(date +%s) - start ))s"
