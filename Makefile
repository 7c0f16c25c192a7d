# fedclaims: every target installs what it needs on a fresh Debian machine (as root).
SHELL := /bin/bash
GO ?= go
# Build tags: openblas links gorgonia's cgo BLAS (libopenblas); drop it for pure-Go gonum BLAS.
TAGS ?= openblas
BIN := bin/fedclaims
# What `fedclaims version` prints, stamped at link time; outside a git checkout the
# version is dev and the commit unknown.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
# Packages with goroutines, run under the race detector; the rest run plain.
RACE_PKGS ?= $(shell $(GO) list ./... 2>/dev/null | grep -E '/(secureagg|aggregator|site|audit|certs|baseline|fedclaimspb)($$|/)')

.PHONY: all deps build test vet demo sweep study bench bench-federation proto torch-check ui-test compose-check clean

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
	$(GO) build -tags '$(TAGS)' -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/fedclaims

vet: deps
	$(GO) vet -tags '$(TAGS)' ./...

test: deps vet
	@if [ -n "$(RACE_PKGS)" ]; then $(GO) test -tags '$(TAGS)' -race $(RACE_PKGS); fi
	$(GO) test -tags '$(TAGS)' $(filter-out $(RACE_PKGS),$(shell $(GO) list ./...))

demo: build
	./$(BIN) demo --out out/demo

# faults runs the aggregator and three sites as processes, each site's link through
# its own toxiproxy proxy, without faults and then under delay, bandwidth limits,
# dropped and reset connections, a 30 s blackhole and kill -9 of a site and of the
# aggregator, and prints what each kept (out/faults/faults.md); not part of test.
# FAULTS_SEED picks where the faults land.
FAULTS_SEED ?= 1
faults: build
	./$(BIN) faults --out out/faults --seed $(FAULTS_SEED) --log-level warn

# sweep pretrains the 2m and 11m presets on synthetic hospitals and recommends a
# model size per task (out/sweep/sweep.md); not part of test. Rerun to resume.
sweep: build
	./$(BIN) sweep --config configs/sweep.yaml --out out/sweep

# study runs the study (configs/study.yaml -> out/study/study.md): scales
# federated on one budget, central and site-alone, controls, recipe, label
# efficiency; at most an hour on two cores; not part of test. Rerun to resume.
study: build
	./$(BIN) study --config configs/study.yaml --out out/study

# torch-check pretrains a tiny checkpoint, runs `fedclaims model forward` on 16
# synthetic patients and python/fedclaims_torch.py (the reference PyTorch module) on
# the same inputs, and fails when the largest absolute difference exceeds 1e-5;
# installs Debian's python3-torch when no python3 imports torch. Not part of test.
torch-check: build
	./scripts/torch-check.sh $(BIN) out/torch-check

# ui-test runs `fedclaims demo` (three hospitals, six rounds, processes on
# loopback) and, once two rounds are applied and the next is open, loads the
# aggregator's status page in headless Chromium: checks the DOM (federation, site
# rows, round row, loss plot, refresh, audit head) and saves the screenshot at
# out/ui-test/status.png. Installs Debian's chromium when missing. Not part of test.
ui-test: build
	./scripts/ui-test.sh $(BIN) out/ui-test

# compose-check validates docker-compose.yml with Debian's docker-compose (1.29,
# Compose file format 3.x): `config -q` checks the schema and resolves every
# service, volume, dependency and interpolation. Installs it when missing
# (--no-install-recommends: no Docker engine). Starts no container; not part of
# test. podman-compose 1.0.3 has no `config`, and its --dry-run still creates the
# volumes and the network, so it is not used here.
compose-check:
	@command -v docker-compose >/dev/null 2>&1 || (echo "installing: docker-compose"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose >/dev/null)
	docker-compose --version
	docker-compose -f docker-compose.yml config -q
	@echo "docker-compose.yml: valid"

bench: build
	$(GO) test -tags '$(TAGS)' -run '^$$' -bench . -benchmem ./...

# bench-federation runs 3, 10, 30 and 64 (secureagg.MaxSites) site agents against one
# aggregator process on loopback, two rounds of a small encoder each, and prints one
# JSON line per site count: the aggregator's peak RSS and heap, the round time. Not
# part of test.
bench-federation: build
	./$(BIN) bench federation --sites 3,10,30,64 --rounds 2 --log-level warn

proto:
	@dpkg -s protobuf-compiler >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null)
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@v1.5.1
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc --go_out=. --go_opt=paths=source_relative \
		--go-grpc_out=. --go-grpc_opt=paths=source_relative fedclaimspb/*.proto

clean:
	rm -rf bin out

# --- CUDA path (model, build tag cuda); none of this is part of test. ---
.PHONY: cuda-deps cuda-check gpu-bundle
CUDA_APT_SOURCE := /etc/apt/sources.list.d/fedclaims-cuda-nonfree.sources
# Debian ships libcuda only with the driver; nvidia-cuda-dev carries a link stub for it.
CUDA_STUBS ?= /usr/lib/x86_64-linux-gnu/stubs
CUDA_CGO := CGO_CFLAGS='-I/usr/include -Wno-deprecated-declarations' CGO_LDFLAGS='-L$(CUDA_STUBS)'

# cuda-deps installs CUDA's headers and link libraries (nvidia-cuda-dev, Debian
# bookworm contrib/non-free, ~770 MB) when they are missing.
cuda-deps:
	@if ! dpkg -s nvidia-cuda-dev >/dev/null 2>&1; then \
		printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: contrib non-free\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' > $(CUDA_APT_SOURCE); \
		echo "installing: nvidia-cuda-dev"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nvidia-cuda-dev >/dev/null; \
	fi

# cuda-check proves the cuda build compiles and vets, on a machine without a GPU.
cuda-check: deps cuda-deps
	$(CUDA_CGO) $(GO) vet -tags 'cuda $(TAGS)' ./model/...
	$(CUDA_CGO) $(GO) build -tags 'cuda $(TAGS)' -o /dev/null ./cmd/fedclaims
	$(CUDA_CGO) $(GO) test -tags 'cuda $(TAGS)' -c -o /dev/null ./model

# gpu-bundle prepares what scripts/gpu-check.sh needs on a GPU machine without Go
# or a network: .gpu-bundle/bundle.tar.zst holds this Go toolchain (bin, pkg/tool,
# pkg/include and src without cmd, testdata and tests) and `go mod vendor` output, and
# .gpu-bundle/unzstd unpacks it where zstd is missing.
GPU_BUNDLE := .gpu-bundle
gpu-bundle:
	@command -v zstd >/dev/null || (apt-get update -qq && apt-get install -y -qq zstd >/dev/null)
	rm -rf $(GPU_BUNDLE) && mkdir -p $(GPU_BUNDLE)/stage/go
	$(GO) mod vendor -o $(GPU_BUNDLE)/stage/vendor
	goroot=$$($(GO) env GOROOT); \
	tar -C "$$goroot" --exclude=./src/cmd --exclude='testdata' --exclude='*_test.go' -cf - ./VERSION ./go.env ./bin ./pkg/tool ./pkg/include ./src \
		| tar -C $(GPU_BUNDLE)/stage/go -xf -
	tar -C $(GPU_BUNDLE)/stage -cf - go vendor | zstd -q -T0 -15 -o $(GPU_BUNDLE)/bundle.tar.zst
	CGO_ENABLED=0 $(GO) build -o $(GPU_BUNDLE)/unzstd ./scripts/unzstd
	rm -rf $(GPU_BUNDLE)/stage
	@ls -l $(GPU_BUNDLE)
