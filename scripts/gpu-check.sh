#!/usr/bin/env bash
# gpu-check.sh is the one check of the model's CUDA path on a GPU machine that
# has the NVIDIA driver, CUDA's headers and a C compiler but neither Go nor a
# network. Prepare it where Go is installed:
#
#   make gpu-bundle      # writes .gpu-bundle/: bundle.tar.zst (a trimmed Go
#                        # toolchain and `go mod vendor` output) and unzstd
#
# then carry the working tree with .gpu-bundle/ to the GPU machine and run
# scripts/gpu-check.sh from the repository root. It
#   1. unpacks the toolchain and vendor tree,
#   2. builds fedclaims with -tags cuda (plus openblas when libopenblas is
#      linkable) and without it, as the CPU baseline,
#   3. runs the model tests under the cuda tag that compare cuBLAS with the host
#      BLAS (TestCUDASgemm, TestCUDAMatchesCPU) and the finite-difference
#      gradient checks with the products on the GPU (TestCUDAModelGrad) and on
#      the host (TestModelGrad),
#   4. times `fedclaims bench train` at --seq 256 --batch 16 for the 11m and
#      101m presets on the GPU build and for 11m on the CPU build.
# Results go to $OUT (default out/gpu-check): test.txt and bench.jsonl. It is
# sized to finish within about eight minutes on one H100 with 16 cores.
# BUILD_ONLY=1 stops after the builds: a check of the bundle on a machine with
# CUDA's headers but no GPU (CUDA_HOME=/usr CUDA_STUBS=/usr/lib/x86_64-linux-gnu/stubs
# after `make cuda-check` on Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bundle=$root/.gpu-bundle
out=${OUT:-$root/out/gpu-check}
mkdir -p "$out"
say() { echo "gpu-check: $*" >&2; }

[ -f "$bundle/bundle.tar.zst" ] || { say "$bundle/bundle.tar.zst is missing: run 'make gpu-bundle' where Go is installed and carry .gpu-bundle"; exit 2; }
[ ! -e vendor ] || { say "$root/vendor exists; remove it (the check unpacks its own)"; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>&1 | tee "$out/device.txt" || true

say "unpacking the toolchain and vendor tree"
work=$(mktemp -d)
trap 'rm -rf "$work" "$root/vendor"' EXIT
if command -v zstd >/dev/null; then
	zstd -dcq "$bundle/bundle.tar.zst" | tar -C "$work" -xf -
else
	"$bundle/unzstd" <"$bundle/bundle.tar.zst" | tar -C "$work" -xf -
fi
mv "$work/vendor" "$root/vendor"

export GOROOT=$work/go PATH=$work/go/bin:$PATH GOTOOLCHAIN=local GOFLAGS=-mod=vendor \
	GOPROXY=off GOCACHE=$work/cache GOPATH=$work/gopath CGO_ENABLED=1
cuda=${CUDA_HOME:-/usr/local/cuda}
# The driver's libcuda is found first; CUDA's link stub only where it is absent.
export CGO_CFLAGS="-I$cuda/include -Wno-deprecated-declarations" CGO_LDFLAGS="-L$cuda/lib64 -L${CUDA_STUBS:-$cuda/lib64/stubs}"
host_tags=""
if ldconfig -p | grep 'libopenblas\.so ' >/dev/null; then host_tags=openblas; fi
gpu_tags="cuda $host_tags"
go version

say "building (tags: '$gpu_tags' and '$host_tags')"
time go build -tags "$gpu_tags" -o "$work/fedclaims-cuda" ./cmd/fedclaims
time go build -tags "$host_tags" -o "$work/fedclaims-cpu" ./cmd/fedclaims
go test -tags "$gpu_tags" -c -o "$work/model-cuda.test" ./model
if [ -n "${BUILD_ONLY:-}" ]; then say "built; BUILD_ONLY set, so no tests or benchmarks"; exit 0; fi

say "GPU against CPU: products, loss and gradients; finite differences"
failed=0
# A failure is reported at the end; the benchmarks run either way.
(cd model && "$work/model-cuda.test" -test.count=1 -test.v -test.run 'TestCUDA|TestModelGrad$|TestGemmSplit') 2>&1 | tee "$out/test.txt" || failed=1

say "throughput"
bench() { # binary preset steps
	timeout 150 "$work/$1" bench train --preset "$2" --seq 256 --batch 16 --steps "$3" | tee -a "$out/bench.jsonl"
}
: >"$out/bench.jsonl"
bench fedclaims-cuda 11m 20 || failed=1
bench fedclaims-cuda 101m 6 || failed=1
bench fedclaims-cpu 11m 4 || failed=1
if [ "$failed" != 0 ]; then say "FAILED (see $out)"; exit 1; fi
say "passed: $out"
