#!/usr/bin/env bash
# Fine-tune the shipped MNIST models on a lent GPU inside one short lease (docs/benchmarks.md,
# "One lent GPU"). Three phases, one per device call, while the machine stays warm:
#   tools/gpu_train.sh start MINUTES   probe the speed of all jobs together, then start them
#                                        (setsid) with as many epochs as fit in MINUTES
#   tools/gpu_train.sh wait SECONDS    sleep, then print each job's progress
#   tools/gpu_train.sh finish          wait for the jobs, score the test split, pack runs into $OUT
# Expects the MNIST IDX files in .devdata/mnist and the runs to start from in .devdata/init/NAME
# (config.json + model.safetensors): both are carried, as the device gets only the repository.
set -u
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=2
DATA=(--data binarized-mnist --data-dir .devdata/mnist)
DEVICE=${DEVICE:-cuda} PROBE_STEPS=${PROBE_STEPS:-60}  # (cpu and fewer steps: a dry run)
IW_SAMPLES=${IW_SAMPLES:-100}  # DRAW's test IWAE k; k = 1000 was 0.33 nats tighter on valid (docs/benchmarks.md, DRAW), ~10x the time
# name | model | options (the run starts from .devdata/init/<init>)
JOBS=(  # DRAW on dynamically binarized data with the 10-sample IWAE
  # objective (CPU, 72 min from the k=5 model: k=10 gained 0.10 nats of valid k=100 NLL, k=5 0.03), the Row LSTM
  # and the PixelRNN at lower rates (restarts at high rates did not help; --optimizer rmsprop is untried)
  "gpu-draw64-iwae|draw|--init .devdata/init/mnist-draw --data binarized-mnist-dynamic --set iw_train_samples=10 --set freeze_generative=false --set dreg=false --batch-size 64 --lr 2e-4 --warmup-steps 50 --ema 0.999"
  "gpu-rowlstm3|pixel-rnn|--init .devdata/init/gpu-rowlstm2 --batch-size 256 --lr 5e-4 --warmup-steps 50 --ema 0.998"
  "gpu-pixelrnn2|pixel-rnn|--init .devdata/init/gpu-pixelrnn --batch-size 256 --lr 2e-4 --warmup-steps 50 --ema 0.999"
)
field() { echo "$1" | cut -d'|' -f"$2"; }

case "${1:-}" in
start)
  minutes=${2:?minutes of training}
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
  mkdir -p runs/probe runs/logs
  for job in "${JOBS[@]}"; do  # all at once, so the probe sees the same sharing as the real runs
    name=$(field "$job" 1)
    # shellcheck disable=SC2046
    python3 -m pixloom train "$(field "$job" 2)" "${DATA[@]}" $(field "$job" 3) --epochs 1 --max-steps "$PROBE_STEPS" \
      --limit-valid 512 --device "$DEVICE" --quiet --out "runs/probe/$name" >"runs/logs/probe-$name.log" 2>&1 &
  done
  wait
  for job in "${JOBS[@]}"; do
    name=$(field "$job" 1)
    tail -2 "runs/logs/probe-$name.log"
    epochs=$(python3 - "$name" "$minutes" "$(field "$job" 3)" <<'EOF'
import csv, math, re, sys
name, minutes, opts = sys.argv[1], float(sys.argv[2]), sys.argv[3]
rows = list(csv.DictReader(open(f"runs/probe/{name}/train_log.csv")))
per_step = (float(rows[-1]["seconds"]) - float(rows[0]["seconds"])) / (int(rows[-1]["step"]) - int(rows[0]["step"]))
batch = int(re.search(r"--batch-size (\d+)", opts).group(1))
steps = math.ceil(50000 / batch)
per_epoch = steps * per_step + 10000 / 256 * per_step * 0.6  # + validation (forward only, bigger batches)
print(max(1, int(0.92 * minutes * 60 / per_epoch)), file=sys.stdout)  # the rest: slack for noise
print(f"{name}: {per_step:.3f} s/step, {steps} steps/epoch, ~{per_epoch:.0f} s/epoch", file=sys.stderr)
EOF
)
    # shellcheck disable=SC2046
    setsid nohup python3 -m pixloom train "$(field "$job" 2)" "${DATA[@]}" $(field "$job" 3) --epochs "$epochs" \
      --max-minutes "$minutes" --device "$DEVICE" --quiet --out "runs/$name" >"runs/logs/$name.log" 2>&1 </dev/null &
    echo "started $name: $epochs epochs"
  done
  sleep 20; tail -n 3 runs/logs/gpu-*.log ;;
wait)
  sleep "${2:?seconds}"
  for job in "${JOBS[@]}"; do
    name=$(field "$job" 1); echo "== $name"; tail -n 2 "runs/$name/metrics.csv" 2>/dev/null; tail -n 1 "runs/$name/train_log.csv"
  done
  nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader ;;
finish)
  while pgrep -f "[p]ixloom train" >/dev/null; do sleep 5; done
  for job in "${JOBS[@]}"; do
    name=$(field "$job" 1); echo "== $name"; tail -n 3 "runs/logs/$name.log"
    iw=(); [ "$(field "$job" 2)" = draw ] && iw=(--iw-samples "$IW_SAMPLES")
    python3 -m pixloom eval "runs/$name" "${DATA[@]}" --split test "${iw[@]}" --device "$DEVICE" --quiet \
      | tee "runs/$name/test-eval.json"
    latest=$(cat "runs/$name/checkpoints/latest")  # keep only the checkpoint a resume needs
    find "runs/$name/checkpoints" -mindepth 1 -maxdepth 1 -type d ! -name "$latest" -exec rm -rf {} +
    tar -czf "$OUT/$name.tar.gz" -C runs "$name"
  done
  tar -czf "$OUT/logs.tar.gz" -C runs logs ;;
*) echo "usage: $0 start MINUTES | wait SECONDS | finish" >&2; exit 2 ;;
esac
