#!/usr/bin/env bash
# Call 1 on the GPU machine: unpack bounding_box_train + query to local disk, start the training detached
# (setsid nohup: it outlives this command), and return once it is seen running (or failing).
#
#   bash studies/gpu/start.sh                                   # the defaults below (the GPU procedure)
#   bash studies/gpu/start.sh --work /tmp/w --device cpu --config configs/gpu/market1501_sn_r50.yaml \
#        -- model.backbone=small transforms.height=32 transforms.width=16 train.epochs=2   # the CPU dry run
#
# Lays out under --work (local disk):
#   data/Market-1501-v15.09.15/{bounding_box_train,query}   from .gpu_stage/call1 (the gallery comes in call 2)
#   train_root/Market-1501-v15.09.15/  links to train and query, and bounding_box_test -> query as a placeholder:
#       the Market adapter needs the folder, and the run does not evaluate (train.eval_every 0)
#   cache/    the decoded uint8 cache of the training split      run/   output_dir (train.log, tensorboard/, ...)
#   run.log   the process's stdout + stderr                      train.pid   the training process id
# Needs no pip: python3 with torch, torchvision, OpenCV, PyYAML and tensorboard (what the GPU machine has).
set -euo pipefail

WORK=/root/reid_gpu
STAGE=.gpu_stage
CONFIG=configs/gpu/market1501_sn_r50.yaml
DEVICE=cuda
CONFIRM=90      # seconds to wait for the first finished epoch before returning (0: return at once)
PY=${PYTHON:-python3}
while [[ $# -gt 0 ]]; do
  case "$1" in
    --work) WORK=$2; shift 2 ;;
    --stage) STAGE=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --confirm) CONFIRM=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "start.sh: unknown option $1 (overrides go after --)" >&2; exit 2 ;;
  esac
done
export NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)
RELEASE=Market-1501-v15.09.15

if [[ -f "$WORK/train.pid" ]] && kill -0 "$(cat "$WORK/train.pid")" 2>/dev/null; then
  echo "start.sh: a training run is already going (pid $(cat "$WORK/train.pid")): not starting another" >&2
  exit 3
fi
if [[ -e "$WORK/run/config.yaml" ]]; then
  echo "start.sh: $WORK/run already holds a run; choose another --work" >&2
  exit 3
fi

"$PY" studies/gpu/stage.py unpack --archive "$STAGE/call1/market_part1.tar.gz" --dest "$WORK/data"

TRAIN_ROOT="$WORK/train_root/$RELEASE"
mkdir -p "$TRAIN_ROOT"
ln -sfn "$WORK/data/$RELEASE/bounding_box_train" "$TRAIN_ROOT/bounding_box_train"
ln -sfn "$WORK/data/$RELEASE/query" "$TRAIN_ROOT/query"
ln -sfn "$WORK/data/$RELEASE/query" "$TRAIN_ROOT/bounding_box_test"   # placeholder: training does not evaluate

# what this machine has (no pip here): the versions the run depends on, the GPU
"$PY" - "$DEVICE" <<'PYEOF'
import importlib.metadata as md, importlib.util, sys
def version(*names):
    for n in names:
        try:
            return md.version(n)
        except md.PackageNotFoundError:
            pass
    return "MISSING"
def present(name):
    try:
        return "present" if importlib.util.find_spec(name) else "absent"
    except ImportError:
        return "absent"
print(f"python {sys.version.split()[0]}, torch {version('torch')}, torchvision {version('torchvision')}, opencv "
      f"{version('opencv-python-headless', 'opencv-python', 'opencv-contrib-python')}, pyyaml {version('PyYAML')}, "
      f"tensorboard {version('tensorboard')}; albumentations "
      f"{present('albumentations')}, numba {present('numba')} (neither is needed)")
if sys.argv[1].startswith("cuda"):
    import torch
    if not torch.cuda.is_available():
        sys.exit("start.sh: --device cuda but torch sees no GPU")
    print("GPU:", torch.cuda.get_device_name(0))
PYEOF

# detached: a new session (setsid) so that the device tool does not end it with this command; the inner shell
# writes its own pid (the python process after exec) for status.py / final.py
setsid nohup bash -c 'echo $$ > "$0/train.pid"; exec "$@"' "$WORK" \
  "$PY" tools/train.py --config "$CONFIG" \
  output_dir="$WORK/run" data.root="$WORK/train_root" data.cache_dir="$WORK/cache" train.device="$DEVICE" "$@" \
  > "$WORK/run.log" 2>&1 < /dev/null &
for _ in $(seq 50); do [[ -s "$WORK/train.pid" ]] && break; sleep 0.1; done
echo "training started: pid $(cat "$WORK/train.pid"), log $WORK/run/train.log, output $WORK/run.log"

alive() {  # a zombie (exited, parent not yet waiting) counts as gone
  local state
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ -n "$state" && "$state" != Z ]]
}
# return when the first epoch has ended (img/s known), training is over, the process died, or after CONFIRM s
deadline=$(( $(date +%s) + ${CONFIRM%.*} ))
while (( $(date +%s) < deadline )); do
  if grep -qE ' epoch [0-9]+: | training done in ' "$WORK/run/train.log" 2>/dev/null; then break; fi
  if ! alive "$(cat "$WORK/train.pid")"; then break; fi
  sleep 1
done
"$PY" studies/gpu/status.py --work "$WORK"
