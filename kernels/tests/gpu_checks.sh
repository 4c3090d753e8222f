#!/usr/bin/env bash
# The GPU half of issue 5: what CI (no GPU) cannot run. Two steps, because the GPU machine
# has the NVIDIA driver and a CUDA toolkit (NVRTC) but no Rust toolchain and no network:
#
#   kernels/tests/gpu_checks.sh bundle   # here: build, strip and collect into target/gpu-bundle
#   kernels/tests/gpu_checks.sh run      # there, with target/gpu-bundle carried
#
# `run` prints: the CPU = GPU digest and record checks (tests/cuda_gpu.rs), the rig's CUDA
# device through the controller's device trait (controller/tests/devices.rs), transport photon/ms per
# benchmark (median of 5 runs of 1e7 photons), sha256d GH/s (3 runs of 10 s), and MCX's own
# cube60 speed through pmcx for the side-by-side comparison.
set -euo pipefail
cd "$(dirname "$0")/../.."
B=target/gpu-bundle

case "${1:-}" in
bundle)
    rm -rf "$B" && mkdir -p "$B"
    # test_exe PACKAGE TEST: the path of that test binary (built if needed).
    test_exe() {
        cargo test --release -p "$1" --test "$2" --no-run --message-format=json 2>/dev/null \
            | python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$2"
    }
    exe=$(test_exe compushare-kernels cuda_gpu)
    # The rig's CUDA device through the controller's device trait (issue 13).
    rig_exe=$(test_exe compushare-controller devices)
    cargo build --release -p compushare-kernels --example cuda_speed
    cargo build --release -p compushare
    cp "$exe" "$B/cuda_gpu"
    cp "$rig_exe" "$B/rig_devices"
    cp target/release/examples/cuda_speed target/release/compushare "$B/"
    strip "$B/cuda_gpu" "$B/rig_devices" "$B/cuda_speed" "$B/compushare"
    # MCX for the comparison (the GPU machine's python3 is 3.12 and cannot reach PyPI).
    python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
        --platform manylinux2014_x86_64 -d "$B" pmcx
    du -sh "$B"
    ;;
run)
    # NVRTC: the machine's toolkit. cudarc looks for libnvrtc.so / libnvrtc.so.12.
    for d in "${CUDA_HOME:-/usr/local/cuda}/lib64" /usr/local/cuda/lib64 /usr/lib/x86_64-linux-gnu; do
        if ls "$d"/libnvrtc.so* >/dev/null 2>&1; then
            export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
            break
        fi
    done
    export COMPUSHARE_CACHE_DIR="${COMPUSHARE_CACHE_DIR:-/tmp/compushare-cache}"
    nvidia-smi --query-gpu=name,driver_version,clocks.sm --format=csv || true
    "$B/cuda_gpu" --nocapture --test-threads 1
    "$B/rig_devices" --nocapture --test-threads 1 cuda_devices_equal_the_cpu_through_the_trait
    for b in cube60 cubesph60b cube60planar cube60b; do
        "$B/cuda_speed" "$b" 10000000 5 0.5
    done
    for i in 1 2 3; do "$B/compushare" bench sha256d --device cuda:0 --seconds 10 --json; done
    python3 -m pip install --quiet --no-index --no-deps --target /tmp/pmcx "$B"/pmcx-*.whl
    PYTHONPATH=/tmp/pmcx python3 - <<'PY'
import time
import numpy as np
import pmcx
# MCX's cube60: 60^3 voxels of medium 1, pencil source at (29, 29, 0) along +z, one 5 ns gate,
# four detectors of radius 1, no reflection at the boundary (mismatch off).
cfg = {
    "nphoton": 100_000_000, "vol": np.ones((60, 60, 60), dtype="uint8"),
    "prop": [[0, 0, 1, 1], [0.005, 1.0, 0.01, 1.37], [0.002, 5.0, 0.90, 1.0]],
    "srcpos": [29, 29, 0], "srcdir": [0, 0, 1], "issrcfrom0": 1,
    "tstart": 0, "tend": 5e-9, "tstep": 5e-9, "isreflect": 0, "seed": 1648335518,
    "detpos": [[29, 19, 0, 1], [29, 39, 0, 1], [19, 29, 0, 1], [39, 29, 0, 1]],
}
for run in range(3):
    t = time.time()
    res = pmcx.run(cfg)
    wall = (time.time() - t) * 1e3
    stat = res.get("stat", {})
    kernel_ms = stat.get("runtime")
    print(f"MCX cube60 run {run}: wall {wall:.0f} ms ({cfg['nphoton'] / wall:.0f} photon/ms);",
          f"stat {stat}")
PY
    ;;
*)
    echo "usage: $0 bundle|run" >&2
    exit 2
    ;;
esac
