# vigil: `make run` shows the demo, `make test` runs the whole suite.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/vigil
export PATH := $(PATH):/usr/local/go/bin
export CGO_ENABLED := 0

.PHONY: all build test test-unit test-integration run bench vet fmt clean

all: build

# A static, stripped, reproducible binary.
build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vigil

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt needed'; exit 1; }
	$(GO) vet ./...

# Unit and integration tests, with the race detector (which needs cgo).
test: build vet
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 9m ./...
	cd integration/manifests && $(GO) vet ./... && $(GO) test -count=1 ./...

test-unit:
	CGO_ENABLED=1 $(GO) test -race -count=1 $$($(GO) list ./... | grep -v /integration)

test-integration: build
	CGO_ENABLED=1 $(GO) test -race -count=1 -v ./integration/...

# The demo: vigil as PID 1 of a fresh PID namespace running examples/demo.sh.
run: build
	./examples/run-demo.sh

bench: build
	./integration/bench/run.sh

clean:
	rm -rf bin

# The vigil image FROM scratch (Dockerfile: /vigil, ENTRYPOINT ["/vigil"])
# from bin/vigil; only the Dockerfile and the binary go to the daemon.
IMAGE ?= vigil:dev
.PHONY: image test-docker
image: build
	tar -c Dockerfile $(BIN) | docker build -t $(IMAGE) -

# vigil as PID 1 of real containers (integration/docker, build tag docker):
# needs a running Docker engine and busybox-static; builds its own images.
test-docker:
	$(GO) test -tags docker -count=1 -v -timeout 14m ./integration/docker/

# Hardening (issue 8, docs/RELIABILITY.md). `make test` already runs every
# fuzz target's seed corpus and the short chaos tests; these run them long.
# fuzz: each target for FUZZTIME (default 10m each, so about 2 h in all).
FUZZTIME ?= 10m
FUZZ_TARGETS := config:FuzzDecode config:FuzzRespawnLimit config:FuzzDurations state:FuzzDecode \
	signals:FuzzParse signals:FuzzParseRewrite control:FuzzRequest control:FuzzClientArgs control:FuzzServerConn \
	supervise:FuzzWire control/httpd:FuzzParseRequest control/httpd:FuzzServe
.PHONY: fuzz chaos soak
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== $${t#*:} in ./$${t%%:*} for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$${t#*:}\$$" -fuzztime $(FUZZTIME) ./$${t%%:*}; \
	done

# chaos: the long forms of integration/chaos_test.go (100,000 orphans,
# 50,000 signals, 20 services crash-looping for 5 minutes, 1 GB of prefixed
# log, ...), as PID 1; every figure is a FIGURE line of the output.
chaos:
	VIGIL_CHAOS=1 $(GO) test -count=1 -v -timeout 120m -run '^Test(Chaos|Security)' ./integration/

# soak: a mixed workload for SOAK_TIME (default 30m; CI: SOAK_TIME=2m make
# soak), a table of vigil's CPU, RSS, fds, threads and zombies every
# SOAK_EVERY (10s); SOAK_REPORT=FILE also writes it as markdown.
SOAK_TIME ?= 30m
soak:
	SOAK_TIME=$(SOAK_TIME) $(GO) test -count=1 -v -timeout 0 -run '^TestSoak$$' ./integration/

# vigil's pods under a real node agent (integration/k8s, SPEC section 8), as
# root: installs containerd, runc, buildah, busybox-static and catatonit from
# Debian, builds kubelet v1.34.4 from the Go module proxy (cached in
# /var/cache/vigil-k8s: minutes the first time), starts containerd and a
# standalone kubelet with dirs of their own, runs the scenarios as static
# pods and always tears it all down. VIGIL_K8S_KEEP=1 keeps the work dir.
.PHONY: test-k8s
test-k8s:
	./integration/k8s/run.sh
