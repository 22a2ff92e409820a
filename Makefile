# Developer entry points. The lab needs root; it builds what it needs under /var/lib/kubeboot-lab.
GO ?= go
LAB := bin/lab
# Extra flags for `lab up`, e.g. make lab-up LAB_UP_FLAGS="--workers 1 --bootstrapper kubeboot"
LAB_UP_FLAGS ?=

.PHONY: lab lab-up lab-down lab-status e2e

lab:
	$(GO) build -o $(LAB) ./lab/cmd/lab

lab-up: lab
	$(LAB) up --repo-root $(CURDIR) $(LAB_UP_FLAGS)

lab-down: lab
	$(LAB) down

lab-status: lab
	$(LAB) status

# -count=1: a run that brings up a real cluster must never be answered from the test cache.
e2e:
	$(GO) test -tags e2e -count=1 ./test/e2e -v -timeout 40m
