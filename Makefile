# fedclaims: every target installs what it needs on a fresh Debian machine (as root).
SHELL := /bin/bash
GO ?= go
# Build tags: openblas links gorgonia's cgo BLAS (libopenblas); drop it for pure-Go gonum BLAS.
TAGS ?= openblas
BIN := bin/fedclaims
# Packages with goroutines, run under the race detector; the rest run plain.
RACE_PKGS ?= $(shell $(GO) list ./... 2>/dev/null | grep -E '/(secureagg|aggregator|site|audit|certs|baseline|proto)($$|/)')

.PHONY: all deps build test vet demo sweep bench proto clean

all: build

# deps installs the system packages the build and tests need, when they are missing.
deps:
	@missing=""; \
	for p in libopenblas-dev; do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(GO) build -tags '$(TAGS)' -o $(BIN) ./cmd/fedclaims

vet: deps
	$(GO) vet -tags '$(TAGS)' ./...

test: deps vet
	@if [ -n "$(RACE_PKGS)" ]; then $(GO) test -tags '$(TAGS)' -race $(RACE_PKGS); fi
	$(GO) test -tags '$(TAGS)' $(filter-out $(RACE_PKGS),$(shell $(GO) list ./...))

demo: build
	./$(BIN) demo --out out/demo

# sweep pretrains the 2m and 11m presets on synthetic hospitals and recommends a
# model size per task (out/sweep/sweep.md); not part of test. Rerun to resume.
sweep: build
	./$(BIN) sweep --config configs/sweep.yaml --out out/sweep

bench: build
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchmem ./...

proto:
	@dpkg -s protobuf-compiler >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null)
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative proto/*.proto

clean:
	rm -rf bin out
