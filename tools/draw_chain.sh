#!/bin/bash
# One DRAW fine-tuning chain on binarized MNIST (the recipe in pixloom/pretrained/mnist-draw/README.md):
#   1. the ELBO on the whole model (p and q), a fresh cosine schedule;
#   2. the 10-sample IWAE bound on the whole model (Burda et al. 2016);
#   3. q(z | x) alone on the 16-sample DReG gradient (Tucker et al. 2019), p frozen.
# Each step starts from the one before and trains into runs/TAG-STEP (outside git). A step whose run
# directory already holds a finished model (config.json and no checkpoint left mid-schedule) is skipped,
# so rerunning the same command continues the chain; a step cut off mid-training is resumed.
#
#   tools/draw_chain.sh INIT TAG SEED ELBO_EPOCHS ELBO_MINUTES IWAE_MINUTES DREG_MINUTES
#   tools/draw_chain.sh mnist-draw draw-chain 35 5.5 44 20 18
#
# Then choose on validation (k = 100, first 1,000 valid images, paired with the shipped model):
#   python bench/bench_iw_k.py runs/TAG-iwae10-dreg16 --split valid --limit 1000 --ks 100 --out NEW.json
#   python bench/bench_iw_k.py --compare SHIPPED-valid1000.json NEW.json --out COMPARE.json
# and ship the winner with tools/ship.py.
set -euo pipefail
cd "$(dirname "$0")/.."  # paths below (runs/, INIT, DATA_DIR) are relative to the repository root
usage="usage: tools/draw_chain.sh INIT TAG SEED ELBO_EPOCHS ELBO_MINUTES IWAE_MINUTES DREG_MINUTES"
if [ $# -ne 7 ]; then echo "$usage" >&2; exit 2; fi
init=$1; tag=$2; seed=$3; elbo_epochs=$4; elbo_min=$5; iwae_min=$6; dreg_min=$7
for n in "$seed" "$elbo_epochs" "$elbo_min" "$iwae_min" "$dreg_min"; do
  [[ $n =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "error: '$n' is not a number ($usage)" >&2; exit 2; }
done
data_dir=${DATA_DIR:-../shared/data/mnist}
threads=${OMP_NUM_THREADS:-2}
common=(--data binarized-mnist-dynamic --data-dir "$data_dir" --ema 0.999 --seed "$seed" --quiet)

step() {  # step NAME FROM ARGS...: train runs/NAME from FROM; skip it when done, resume it when cut off
  local name=$1 from=$2; shift 2
  if [ -f "runs/$name/done" ]; then echo "skip $name (finished)"; return; fi
  echo "$(date -u +%H:%M:%S) start $name from $from"
  if [ -f "runs/$name/train_config.json" ]; then
    OMP_NUM_THREADS=$threads pixloom train draw --out "runs/$name" --resume --quiet
  else
    OMP_NUM_THREADS=$threads pixloom train draw "${common[@]}" --init "$from" "$@" --out "runs/$name"
  fi
  touch "runs/$name/done"
  echo "$(date -u +%H:%M:%S) finished runs/$name: $(tail -1 "runs/$name/metrics.csv")"
}

elbo=$tag-elbo; iwae=$tag-iwae10; dreg=$tag-iwae10-dreg16
step "$elbo" "$init" --set freeze_generative=false --set dreg=false --set iw_train_samples=1 \
  --batch-size 64 --lr 6e-4 --warmup-steps 100 --epochs "$elbo_epochs" --max-minutes "$elbo_min"
step "$iwae" "runs/$elbo" --set iw_train_samples=10 --batch-size 16 --lr 1e-4 --warmup-steps 50 \
  --epochs 0.8 --max-minutes "$iwae_min" --limit-valid 2000
step "$dreg" "runs/$iwae" --set freeze_generative=true --set dreg=true --set iw_train_samples=16 \
  --batch-size 8 --lr 1e-4 --warmup-steps 50 --epochs 0.3 --max-minutes "$dreg_min" --limit-valid 500
echo "$(date -u +%H:%M:%S) chain done: runs/$dreg"
