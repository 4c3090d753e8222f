#!/usr/bin/env bash
# Every figure in BENCHMARKS.md, measured side by side in one run on this machine.
# Usage: scripts/bench.sh [RUNS]   (default 3 runs per figure; medians are reported)
# Run it on a quiet machine: these are wall-clock figures. CPUMINER_OPT=/path/to/cpuminer adds
# cpuminer-opt's sha256d rate, measured in the same run.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release -q -p compushare
cargo build --release -q -p compushare-kernels --example transport_speed
bin=./target/release/compushare
median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
field() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }

echo "# machine: $(nproc) vCPU, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# date: $(date -u +%FT%TZ), commit $(git rev-parse --short HEAD)"

echo "## protocol"
$bin bench protocol --seconds 5

echo "## sha256d, 1 thread, MH/s (median of $runs x 5 s)"
for path in avx512 shani avx2 portable auto; do
    rates=$(for _ in $(seq "$runs"); do $bin bench sha256d --threads 1 --seconds 5 --path $path --json | field '["hashes_per_s"]'; done)
    printf '%-9s %s\n' "$path" "$(echo "$rates" | median | awk '{printf "%.2f", $1/1e6}')"
done
rates=$(for _ in $(seq "$runs"); do $bin bench sha256d --threads 2 --seconds 5 --json | field '["hashes_per_s"]'; done)
printf '%-9s %s (2 threads, total)\n' "auto" "$(echo "$rates" | median | awk '{printf "%.2f", $1/1e6}')"
if command -v openssl >/dev/null; then
    # 64-byte messages: two compressions each, like a sha256d with a midstate.
    ossl=$(for _ in $(seq "$runs"); do openssl speed -evp sha256 -bytes 64 -seconds 3 -elapsed 2>/dev/null | awk '/^sha256/ {v=$2; sub("k","",v); print v*1000/64/2}'; done | median)
    printf 'openssl sha256 -bytes 64 (1 thread, wall): %.2f M sha256d-equivalents/s\n' "$(echo "$ossl" | awk '{print $1/1e6}')"
fi

if [ -n "${CPUMINER_OPT:-}" ] && [ -x "$CPUMINER_OPT" ]; then
    # A peer measured in the same run: cpuminer-opt (built here from its own sources, not
    # part of this repository), 1 thread, its offline benchmark; the median of the "Total"
    # lines after the first (ramp-up) one, over RUNS runs of 20 s.
    peer=$(for _ in $(seq "$runs"); do
        "$CPUMINER_OPT" -a sha256d --benchmark -t 1 -q --time-limit=20 2>&1 \
            | sed 's/\x1b\[[0-9;]*m//g' | awk '{for (i = 1; i < NF; i++) if ($i == "Total:" && ++n > 1) print $(i+1)}' | median
    done | median)
    printf 'cpuminer-opt sha256d --benchmark -t 1: %s MH/s\n' "$peer"
fi

echo "## transport, photon/ms, 1e6 photons, 2 threads (median of $runs)"
for b in cube60 cube60b cubesph60b cube60planar; do
    speeds=$(for _ in $(seq "$runs"); do $bin sim --bench $b --photons 1000000 --threads 2 --json | field '["photons_per_ms"]'; done)
    printf '%-13s %s\n' "$b" "$(echo "$speeds" | median)"
done
for b in slab fine100; do
    printf '%-13s ' "$b"
    ./target/release/examples/transport_speed $b 1000000 2 "$runs" | grep -i median
done

echo "## rig: switch latency, vault seal throughput, resident memory ($runs runs)"
for _ in $(seq "$runs"); do $bin bench rig --json; done

echo "## manager under 10,000 simulated rigs (one run: it loads both cores)"
$bin bench manager --rigs 10000 --duration 30 --heartbeat 10
