# Developer entry points. The lab needs root; it builds what it needs under /var/lib/kubeboot-lab.
GO ?= go
# bash: the e2e target needs pipefail.
SHELL := /bin/bash
LAB := bin/lab
# Extra flags for `lab up`, e.g. make lab-up LAB_UP_FLAGS="--workers 1 --bootstrapper kubeadm"
LAB_UP_FLAGS ?=
# How long `make fuzz` runs each fuzz target (hack/fuzz.sh).
FUZZTIME ?= 1m
# Everything here but the race-detector runs builds without cgo: kubeboot must be static (below), and the Go build
# cache keys every package on CGO_ENABLED, so the lab's own binaries, kubeboot and the e2e test binary built alike
# compile their shared dependencies (client-go and the rest) once. go vet runs with -race for the same reason: it
# then reuses what the race-detector tests compile instead of compiling everything once more.
export CGO_ENABLED := 0
# No DWARF in what the Makefile compiles (kubeboot, the lab's tools, the test binaries): a cold CI compiles kubeboot's
# dependencies twice (with and without the race detector), and hack/cold-compile.sh took 669 s without DWARF against
# 729 s with it, on two cores. Stack traces do not need it (they come from the binary's pclntab); a debugger does:
# `make build GOFLAGS=` builds with it. The lab's components are compiled without it in any case (lab/build).
export GOFLAGS += -gcflags=all=-dwarf=false

.PHONY: build lab lab-build lab-build-all lab-up lab-down lab-status test unit fuzz e2e

# kubeboot is linked statically: the node-local API endpoint runs it inside the pause image, which has no C
# library (internal/localendpoint refuses a dynamically linked binary).
build:
	$(GO) build -o bin/kubeboot ./cmd/kubeboot

lab:
	$(GO) build -o $(LAB) ./lab/cmd/lab

# Builds the upstream components and the image bundle of the default release (cached; cold: 9 to 22 minutes on 2 cores, by machine);
# go run ./lab/cmd/labbuild -version v1.36.3 builds another release next to it.
lab-build:
	$(GO) run ./lab/cmd/labbuild

# Both supported releases: the unit tests compare with upstream kubeadm of each, the e2e runs a cluster of each.
lab-build-all:
	$(GO) run ./lab/cmd/labbuild -all

lab-up: lab
	$(LAB) up --repo-root $(CURDIR) $(LAB_UP_FLAGS)

lab-down: lab
	$(LAB) down

lab-status: lab
	$(LAB) status

# The README's test command: the lab's components first (tests that compare with upstream kubeadm or talk to a
# real etcd use them), then the unit tests, then the lab end-to-end tests.
test: lab-build-all unit e2e

# go vet and the unit tests, with the race detector. They include the seed corpora of the fuzz targets and the
# inputs fuzzing once found (testdata/fuzz); fuzzing itself is `make fuzz`: a 3 s run of each target cost a cold
# CI 7.4 minutes, 6 of them building the instrumented test binaries. The component modules under lab/components
# are separate modules and not part of ./...
unit:
	CGO_ENABLED=1 $(GO) vet -race ./...
	CGO_ENABLED=1 $(GO) vet -race -tags e2e ./test/e2e
	KUBEBOOT_LAB_BIN=$$($(GO) run ./lab/cmd/labbuild -print-bin-dir) CGO_ENABLED=1 $(GO) test -race -count=1 ./...

# Every fuzz target for FUZZTIME, one after another (docs/RELIABILITY.md lists them). A crash leaves its input
# in the package's testdata/fuzz/FuzzXxx/, where it stays as a regression case.
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) hack/fuzz.sh

# -count=1: a run that brings up a real cluster must never be answered from the test cache. The output is
# go test -v's, followed by the output of each failed test (hack/testsummary), so the failure is in the tail.
e2e:
	$(GO) build -o bin/testsummary ./hack/testsummary
	set -o pipefail; $(GO) test -tags e2e -count=1 ./test/e2e -json -timeout 70m | bin/testsummary
