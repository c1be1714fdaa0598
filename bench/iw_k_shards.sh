#!/bin/bash
# Score a model's IWAE estimate on the test split in 500-image shards, resumably.
# Each finished shard is moved into OUTDIR, so a cut-off run loses at most the shards in flight;
# shards already in OUTDIR are skipped. Run one worker per core, then merge:
#   bench/iw_k_shards.sh pixloom/pretrained/mnist-draw bench/results/draw-test-k1000-shards 0 2 &
#   bench/iw_k_shards.sh pixloom/pretrained/mnist-draw bench/results/draw-test-k1000-shards 1 2 &
#   python bench/bench_iw_k.py --merge bench/results/draw-test-k1000-shards/test-*.json --out merged.json
# usage: iw_k_shards.sh RUN OUTDIR WORKER NUM_WORKERS [KS (default 100,1000)] [SPLIT (default test)]
set -euo pipefail
usage="usage: bench/iw_k_shards.sh RUN OUTDIR WORKER NUM_WORKERS [KS] [SPLIT]"
if [ $# -lt 4 ]; then echo "$usage" >&2; exit 2; fi
if ! [[ $3 =~ ^[0-9]+$ && $4 =~ ^[1-9][0-9]*$ && $3 -lt $4 ]]; then
  echo "error: WORKER must be 0..NUM_WORKERS-1 ($usage)" >&2; exit 2
fi
run=$1; outdir=$2; worker=$3; workers=$4; ks=${5:-100,1000}; split=${6:-test}
shard=500; total=10000
mkdir -p "$outdir"
for ((start = worker * shard; start < total; start += workers * shard)); do
  final="$outdir/$split-$start.json"
  [ -f "$final" ] && continue
  tmp=$(mktemp --suffix=.json)
  OMP_NUM_THREADS=1 python bench/bench_iw_k.py "$run" --split "$split" --start "$start" --limit "$shard" \
    --ks "$ks" --out "$tmp" || { rc=$?; rm -f "$tmp"; exit $rc; }
  mv "$tmp" "$final"
done
