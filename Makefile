# vigil: `make run` shows the demo, `make test` runs the whole suite.
GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
BIN      := bin/vigil
# TAGS=timetzdata embeds Go's time zone database (+400 KiB) for images
# without /usr/share/zoneinfo that use a schedule's timezone.
TAGS     ?=
export PATH := $(PATH):/usr/local/go/bin
export CGO_ENABLED := 0

.PHONY: all build test test-unit test-integration run bench size vet fmt clean

all: build

# A static, stripped, reproducible binary.
build:
	$(GO) build -trimpath -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/vigil

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

# Where the binary's bytes go: its sections and each package's symbols.
size:
	./integration/bench/size.sh

clean:
	rm -rf bin $(DIST)

# Release: a static binary per architecture, SHA256SUMS and
# one OCI image per architecture from the same Dockerfile, without a
# container engine (integration/release/ociimage). Reproducible: -trimpath,
# no VCS stamp, every image timestamp from SOURCE_DATE_EPOCH (the last
# commit's time), so building twice, or in another directory, gives the same
# bytes. GOARM=7 for arm (ARMv7, hardware floating point: a Raspberry Pi 2
# or newer, not ARMv6).
DIST          ?= dist
RELEASE_ARCHS := amd64 arm64 arm 386 ppc64le s390x riscv64
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
IMAGE_NAME    ?= vigil
# The image tags: the version, without what a tag cannot hold, -ARCH.
IMAGE_TAG     := $(subst +,_,$(VERSION))
.PHONY: release test-release
release:
	rm -rf $(DIST) && mkdir -p $(DIST)
	@set -e; for a in $(RELEASE_ARCHS); do \
		echo "go build linux/$$a"; \
		GOOS=linux GOARCH=$$a GOARM=7 $(GO) build -trimpath -buildvcs=false -ldflags '$(LDFLAGS)' \
			-o $(DIST)/vigil-linux-$$a ./cmd/vigil; \
	done
	GOOS= GOARCH= $(GO) build -trimpath -o bin/ociimage ./integration/release/ociimage
	@set -e; for a in $(RELEASE_ARCHS); do \
		p=linux/$$a; case $$a in arm) p=linux/arm/v7;; arm64) p=linux/arm64/v8;; esac; \
		echo "image $$p"; \
		./bin/ociimage -f Dockerfile -platform $$p -replace bin/vigil=$(DIST)/vigil-linux-$$a \
			-name $(IMAGE_NAME) -tag '$(IMAGE_TAG)'-$$a -created $(SOURCE_DATE_EPOCH) -o $(DIST)/vigil-linux-$$a.oci.tar; \
	done
	cd $(DIST) && sha256sum vigil-linux-* >SHA256SUMS
	@cat $(DIST)/SHA256SUMS

# The release proven: every binary static and of its architecture, the
# images sound, a second build in another directory byte for byte the same,
# and the arm64, arm and s390x binaries (ppc64le and riscv64 too) run under
# qemu-user-static as PID 1 (integration/release, build tag release).
test-release: release
	CGO_ENABLED=1 $(GO) test -tags release -count=1 -v -timeout 5m ./integration/release/

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
	reexec:FuzzWire config/dotenv:FuzzParse supervise/svclog:FuzzRingDecode control/httpd:FuzzParseRequest control/httpd:FuzzServe
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

# vigil's pods under a real node agent (integration/k8s; README: In Docker and Kubernetes), as
# root: installs containerd, runc, buildah, busybox-static and catatonit from
# Debian, builds kubelet v1.34.4 from the Go module proxy (cached in
# /var/cache/vigil-k8s: minutes the first time), starts containerd and a
# standalone kubelet with dirs of their own, runs the scenarios as static
# pods and always tears it all down. VIGIL_K8S_KEEP=1 keeps the work dir.
.PHONY: test-k8s
test-k8s:
	./integration/k8s/run.sh
