#!/bin/bash
# One DRAW fine-tuning chain on binarized MNIST (the recipe of bench/notes/mnist-draw.md, stages 10-13):
#   1. the ELBO on the whole model (p and q), a fresh cosine schedule;
#   2. the 10-sample IWAE bound on the whole model (Burda et al. 2016);
#   3. q(z | x) alone on the 16-sample DReG gradient (Tucker et al. 2019), p frozen.
# Each step starts from the one before. As soon as a step finishes, its weights and logs are copied
# into bench/runs/TAG-STEP (and committed with --commit), so a session cut off mid-chain keeps every
# finished step. A step whose bench/runs directory already holds model.safetensors is skipped, so
# rerunning the same command resumes the chain.
#
#   bench/draw_chain.sh INIT TAG SEED ELBO_EPOCHS ELBO_MINUTES IWAE_MINUTES DREG_MINUTES [--commit]
#   bench/draw_chain.sh mnist-draw draw-s34 34 5.5 44 20 18 --commit
#
# Then choose on validation (k = 100, first 1,000 valid images, paired with the shipped model's file):
#   python bench/bench_iw_k.py bench/runs/TAG-iwae10-dreg16 --split valid --limit 1000 --ks 100 --out NEW.json
#   python bench/bench_iw_k.py --compare SHIPPED-valid1000.json NEW.json --out COMPARE.json
set -euo pipefail
cd "$(dirname "$0")/.."  # paths below (runs/, bench/runs/, INIT, DATA_DIR) are relative to the repository root
usage="usage: bench/draw_chain.sh INIT TAG SEED ELBO_EPOCHS ELBO_MINUTES IWAE_MINUTES DREG_MINUTES [--commit]"
if [ $# -lt 7 ]; then echo "$usage" >&2; exit 2; fi
init=$1; tag=$2; seed=$3; elbo_epochs=$4; elbo_min=$5; iwae_min=$6; dreg_min=$7; commit=${8:-}
for n in "$seed" "$elbo_epochs" "$elbo_min" "$iwae_min" "$dreg_min"; do
  [[ $n =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "error: '$n' is not a number ($usage)" >&2; exit 2; }
done
if [ -n "$commit" ] && [ "$commit" != "--commit" ]; then echo "$usage" >&2; exit 2; fi
data_dir=${DATA_DIR:-../shared/data/mnist}
threads=${OMP_NUM_THREADS:-2}
common=(--data binarized-mnist-dynamic --data-dir "$data_dir" --ema 0.999 --seed "$seed" --quiet)

keep() {  # copy a finished run into bench/runs and (optionally) commit it
  local name=$1
  mkdir -p "bench/runs/$name"
  cp "runs/$name"/{config.json,model.safetensors,metrics.csv,train_config.json,train_log.csv} "bench/runs/$name/"
  echo "$(date -u +%H:%M:%S) kept bench/runs/$name: $(tail -1 "runs/$name/metrics.csv")"
  if [ -n "$commit" ]; then
    git add "bench/runs/$name" && git commit -q -m "bench: DRAW chain step bench/runs/$name" -- "bench/runs/$name"
  fi
}

step() {  # step NAME FROM ARGS...: train runs/NAME from FROM unless bench/runs/NAME is already there
  local name=$1 from=$2; shift 2
  if [ -f "bench/runs/$name/model.safetensors" ]; then echo "skip $name (in bench/runs)"; return; fi
  echo "$(date -u +%H:%M:%S) start $name from $from"
  OMP_NUM_THREADS=$threads pixloom train draw "${common[@]}" --init "$from" "$@" --out "runs/$name"
  keep "$name"
}

elbo=$tag-elbo; iwae=$tag-iwae10; dreg=$tag-iwae10-dreg16
step "$elbo" "$init" --set freeze_generative=false --set dreg=false --set iw_train_samples=1 \
  --batch-size 64 --lr 6e-4 --warmup-steps 100 --epochs "$elbo_epochs" --max-minutes "$elbo_min"
step "$iwae" "bench/runs/$elbo" --set iw_train_samples=10 --batch-size 16 --lr 1e-4 --warmup-steps 50 \
  --epochs 0.8 --max-minutes "$iwae_min" --limit-valid 2000
step "$dreg" "bench/runs/$iwae" --set freeze_generative=true --set dreg=true --set iw_train_samples=16 \
  --batch-size 8 --lr 1e-4 --warmup-steps 50 --epochs 0.3 --max-minutes "$dreg_min" --limit-valid 500
echo "$(date -u +%H:%M:%S) chain done: bench/runs/$dreg"
