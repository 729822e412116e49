#!/usr/bin/env bash
# The comparative studies of the scaled-down CPU recipe on real Market-1501 (BENCHMARKS.md, "Scaled-down studies"):
# trains every configs/cpu_quick/*.yaml run in order (the softmax run first: it is the DarkRank teacher) and
# evaluates each with studies/cpu_quick_eval.py right after it (one job at a time: two jobs on 2 cores run
# each about 3x slower; the trainer's own final evaluation is switched off, cpu_quick_eval.py does it): single
# query, multi-query and re-ranking for the loss comparison (softmax, sn, the two triplets), the gallery-size study
# with the sn model, single query for HRAML, the regularizer and DarkRank runs.
#   bash studies/cpu_quick_study.sh /path/to/market [run ...]      (default: every run, seed 0)
# SEED=1 bash studies/cpu_quick_study.sh ... writes runs/quick_<name>_seed1 instead (single query only).
# PIPELINE=albumentations ... trains with the per-file pipeline of earlier releases (runs/quick_<name>_albu[_seedN]),
# for the old-vs-new data path comparison (default: the tensor pipeline). EVAL=single: single query only.
# EXTRA="key=value ..." adds config overrides (e.g. train.channels_last=false: the old path's NCHW model on the CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="${1:?usage: cpu_quick_study.sh MARKET_ROOT [run ...]}"
shift
RUNS=("$@")
if [ ${#RUNS[@]} -eq 0 ]; then
    RUNS=(softmax sn triplet triplet_soft triplet_density triplet_horde hraml student_alone student_kd student_soft
          student_hard student_kd_soft)
fi
SEED="${SEED:-0}"
PIPELINE="${PIPELINE:-tensor}"
SUFFIX=""
[ "$PIPELINE" != "tensor" ] && SUFFIX="_albu"
[ "$SEED" != "0" ] && SUFFIX="${SUFFIX}_seed$SEED"
export NO_ALBUMENTATIONS_UPDATE=1
for run in "${RUNS[@]}"; do
    out="runs/quick_${run}${SUFFIX}"
    if grep -qs "training done" "$out/train.log"; then
        echo "== $run: $out is trained, not retrained"
    else
        # An interrupted run continues from its checkpoint (resume is exact: same numbers as an uninterrupted run).
        resume=()
        [ -f "$out/checkpoint.pth" ] && resume=(--resume)
        echo "== $run (seed $SEED) -> $out ${resume[*]:-} $(date +%T)"
        /usr/bin/time -v python tools/train.py --no-progress "${resume[@]}" --config "configs/cpu_quick/$run.yaml" \
            "data.root=$ROOT" "seed=$SEED" "output_dir=$out" "data.pipeline=$PIPELINE" ${EXTRA:-} \
            train.eval_every=0 train.projector_samples=0 2>> "$out.time.log" | tail -4
        grep -E "Elapsed|Maximum resident" "$out.time.log"
    fi
    # Extra seeds only feed the seed-spread table.
    case "${EVAL:-full}:$run$SUFFIX" in
        single:*) opts=(--single-query-only) ;;
        full:sn) opts=(--gallery-study sn) ;;
        full:softmax|full:triplet|full:triplet_soft) opts=() ;;
        *) opts=(--single-query-only) ;;
    esac
    python studies/cpu_quick_eval.py --root "$ROOT" --runs "$run$SUFFIX" --skip-done "${opts[@]}"
done
