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
