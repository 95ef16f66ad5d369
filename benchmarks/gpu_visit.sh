#!/usr/bin/env bash
# Issue 16: every GPU measurement that remains, in one device visit. Run from the repository root:
#
#   OUT=/path/for/results bash benchmarks/gpu_visit.sh        # WHEELS=dir: pip-install pydantic from there first
#
# No Ray there: everything runs from the repository with PYTHONPATH. Each step has its own time limit and writes
# <step>.json (the script's one JSON line, or pytest's output) and <step>.err under $OUT; rc.txt has each
# step's exit status (124: it hit its limit). A failing step does not stop the next. About 9 minutes in all.
# QUICK=1: the same steps as smoke runs (--quick, device auto), to check the script itself on a CPU.
set -u
OUT=${OUT:-/tmp/gpu_visit}
PY=${PYTHON:-python}
mkdir -p "$OUT"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if [ -n "${WHEELS:-}" ]; then
    $PY -m pip install -q --no-index --find-links "$WHEELS" pydantic pydantic-settings >"$OUT/pip.log" 2>&1
fi
{ nvidia-smi; $PY -c 'import torch; print(torch.__version__, torch.version.cuda, torch.backends.cudnn.version())'; } \
    >"$OUT/machine.txt" 2>&1

step() {  # step NAME LIMIT_S COMMAND...
    local name=$1 limit=$2
    shift 2
    local start=$SECONDS
    timeout "$limit" "$@" >"$OUT/$name.json" 2>"$OUT/$name.err"
    echo "$name rc=$? seconds=$((SECONDS - start))" | tee -a "$OUT/rc.txt"
}

# 1. CUDA correctness: the device-parametrised tests, bf16 vs fp32, no sync per step, the captured step vs eager.
step cuda_tests 150 $PY -m pytest -q -m gpu -p no:cacheprovider \
    tests/mixup_core/test_cuda.py tests/mixup_core/test_device_step.py
# 2. Single trial, preact_resnet18, batch 128 and 512, every arm incl. ours_graph, against the reference loop.
#    Its defaults, unattended (the goal: >= 3x the reference at b128, paper_run_minutes <= 4, mixing_share <= 1 %).
if [ "${QUICK:-0}" = 1 ]; then
    TP=(--quick) PK=(--quick --concurrency 1,2 --gain-at 2 --trials 2 --epochs 1)
else
    TP=(--device cuda) PK=(--trials 4 --concurrency 1,2,4 --gain-at 4 --epochs 2)
fi
step throughput 330 $PY benchmarks/gpu_throughput.py "${TP[@]}"
# 3. Packing preact_resnet18 at batch 128, 1/2/4 processes per GPU: the eager step, then the captured one.
#    The solo levels' test errors of the two runs (same seeds, 2 epochs) are the graph-vs-eager error check.
step packing_resnet 150 $PY benchmarks/gpu_packing.py --device auto --model preact_resnet18 "${PK[@]}"
step packing_resnet_graph 150 $PY benchmarks/gpu_packing.py --device auto --model preact_resnet18 "${PK[@]}" --cuda-graph
exit 0
