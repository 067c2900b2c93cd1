#!/usr/bin/env bash
# Fine-tune the demo heads into demo/ one after another: niced, one thread, logs in $LOG_DIR/train-<head>.log.
#   bash tools/training/run_demo.sh                      # all four (about 90 min on one shared CPU core)
#   HEADS="mrpc" bash tools/training/run_demo.sh         # just one
# Data: $BERTSERVE_DATA_DIR (default ../shared/data beside the repository).
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
LOG_DIR=${LOG_DIR:-/tmp}
HEADS=${HEADS:-"sst2 mrpc conll squad"}
SQUAD_EPOCHS=${SQUAD_EPOCHS:-1.3}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false RAYON_NUM_THREADS=1

args_for() {
    case $1 in
        sst2) echo "--out demo/sst2-minilm --train-limit 20000 --epochs 1 --max-length 64 --batch-size 32 --lr 5e-5" ;;
        mrpc) echo "--out demo/mrpc-minilm --epochs 3 --max-length 128 --batch-size 16 --lr 5e-5" ;;
        conll) echo "--out demo/conll-minilm --epochs 2 --max-length 128 --batch-size 32 --lr 8e-5" ;;
        squad) echo "--out demo/squad-minilm --epochs $SQUAD_EPOCHS --max-length 384 --stride 128 --batch-size 16 --lr 8e-5" ;;
        *) echo "unknown head $1" >&2; return 1 ;;
    esac
}

status=0
for head in $HEADS; do
    args=$(args_for "$head") || exit 2
    echo "$(date +%T) start $head: python -m tools.training --head $head $args --seed 42 --threads 1"
    # shellcheck disable=SC2086  # $args is a list of options
    nice -n 15 "$PY" -m tools.training --head "$head" $args --seed 42 --threads 1 >"$LOG_DIR/train-$head.log" 2>&1
    rc=$?
    echo "$(date +%T) end $head rc=$rc (log $LOG_DIR/train-$head.log)"
    [ "$rc" -eq 0 ] || status=$rc
done
exit "$status"
