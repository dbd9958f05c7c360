# kite — see README.md. `make run` starts a lab cluster; `make test` installs
# what the tests need and runs every tier.
SHELL := /bin/bash
GO ?= go
BIN := bin/kite
K8S_VERSION := v1.37.2
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w \
	-X kite/internal/version.Version=$(VERSION) \
	-X k8s.io/client-go/pkg/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/client-go/pkg/version.gitMajor=1 \
	-X k8s.io/client-go/pkg/version.gitMinor=37 \
	-X k8s.io/component-base/version.gitVersion=$(K8S_VERSION) \
	-X k8s.io/component-base/version.gitMajor=1 \
	-X k8s.io/component-base/version.gitMinor=37

.PHONY: build test deps bench run unit e2e clean docs

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/kite

# Packages the tests need on a fresh Debian 12 machine.
APT_PACKAGES := runc nftables iptables iproute2 busybox-static conntrack curl util-linux tmux containernetworking-plugins bc
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then echo "installing:$$missing"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi

# Every tier runs inside a fresh network and mount namespace (hack/netns.sh),
# so no test traffic can leave the machine.
test: deps build
	test/e2e/get-kubectl-1.20.sh
	$(GO) test -count=1 -run XXX ./... >/dev/null
	hack/netns.sh $(GO) test -count=1 -timeout 20m ./...

# Every benchmark the issues ask for: bench/ (the lab, API, proxy, DNS, LB,
# port-forward) and the packages' own (pod startup, EndpointSlice latency
# and reconcile), one package at a time so they don't share the CPUs.
BENCH_PACKAGES := ./bench/... ./internal/agent/ ./internal/controller/endpointslice/
bench: build
	start=$$(date +%s); \
	hack/netns.sh $(GO) test -p 1 -run XXX -bench . -benchtime 1x -timeout 20m $(BENCH_PACKAGES) 2>&1 | tee bench/.output; \
	test $${PIPESTATUS[0]} -eq 0 && \
	$(GO) run ./hack/benchresults -elapsed $$(( $$(date +%s) - start ))s < bench/.output > bench/RESULTS.md
	rm -f bench/.output

# docs/walkthrough.md from a real run of the walkthrough test: its
# transcript (every command and output) filled into docs/walkthrough.md.tmpl.
docs: build
	hack/netns.sh env KITE_WALKTHROUGH_TRANSCRIPT=$(CURDIR)/docs/.transcript.json $(GO) test -count=1 -run 'TestWalkthrough$$' ./test/e2e/
	$(GO) run ./hack/gendocs -template docs/walkthrough.md.tmpl -transcript docs/.transcript.json -out docs/walkthrough.md
	rm -f docs/.transcript.json

# A lab cluster inside a private network namespace of its own: the shell
# that opens has KUBECONFIG set; leaving it tears everything down.
run: deps build
	hack/netns.sh hack/lab-shell.sh $(CURDIR)/$(BIN)

clean:
	rm -rf bin _output
