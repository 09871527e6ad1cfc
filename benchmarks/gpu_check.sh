#!/usr/bin/env bash
# Issue 19's GPU checks in one short run on a lent machine (the `device` tool, about 5 minutes):
#   bash scripts/gpu_bundle.sh                      # here, once: .gpu/ (wheels the image lacks, MNIST)
#   device run: bash benchmarks/gpu_check.sh        # carry [".gpu"]; figures come back in $OUT
# The machine's own python3 (with CUDA torch) runs trainlab from the working tree. Figures: $OUT/summary.json
# (each run's wall time, train seconds, images/s and test accuracy), $OUT/summary.txt, $OUT/logs.tar.gz.
set -uo pipefail
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"; RUNS=/tmp/gpu-runs; LOGS=/tmp/gpu-logs; mkdir -p "$RUNS" "$LOGS"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD TRAINLAB_DATA=$PWD/.gpu/data TRAINLAB_CACHE=/tmp/gpu-cache
python3 -m pip install --no-index --no-deps --quiet .gpu/wheels/*.whl > "$LOGS/pip.log" 2>&1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader > "$OUT/summary.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$OUT/summary.txt"

run() {  # NAME COMMAND...: one timed run, its folder under $RUNS/NAME
  local name=$1; shift
  local start=$(date +%s.%N)
  timeout 240 "$@" progress=false output_dir="$RUNS/$name" > "$LOGS/$name.log" 2>&1
  local rc=$?
  echo "$name rc=$rc wall=$(python3 -c "print(round($(date +%s.%N) - $start, 1))") s" | tee -a "$OUT/summary.txt"
}
TL="python3 -m trainlab run"
run cnn_mnist        $TL workshop/task1 data.name=mnist data.val_size=5000 epochs=5 device=cuda
run preact_mnist     $TL mnist/preact_resnet device=cuda
run preact_compiled  $TL mnist/preact_resnet device=cuda compile=true
run preact_fp32      $TL mnist/preact_resnet device=cuda precision=fp32 channels_last=false
run ddp_nccl_1       python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m trainlab run mnist/preact_resnet device=cuda
run ddp_2_on_1_gpu   $TL mnist/preact_resnet device=cuda epochs=1 --nproc 2   # expected: refused, one process per GPU

# Host syncs in the training hot path: CUDA's sync debug mode counts them over one epoch's steps.
python3 - >> "$OUT/summary.txt" 2>&1 <<'PY'
import warnings, torch
from trainlab.config import load_config
from trainlab.experiment import build_experiment, build_callbacks
from trainlab.engine.loop import Trainer
from trainlab.engine.callbacks import NonFiniteLossGuard, TensorBoardLogger
config, _ = load_config("mnist/preact_resnet", ["device=cuda", "epochs=1"])
e = build_experiment(config)
trainer = Trainer(e.model, e.optimizer, e.loss_fn, e.data.train, None, epochs=1, placement=e.placement,
                  callbacks=[NonFiniteLossGuard(), TensorBoardLogger(__import__("pathlib").Path("/tmp/gpu-tb"))], task=e.task)
trainer.fire("on_fit_start"); trainer.model.train()
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always"); torch.cuda.set_sync_debug_mode("warn")
    for step, (x, y) in enumerate(e.data.train):
        if step == 100: break
        from trainlab.engine.step import training_step
        trainer.inputs, trainer.targets = x, y
        trainer.logits, trainer.loss, _ = training_step(e.model, e.optimizer, e.loss_fn, x, y, e.placement,
                                                        after_backward=trainer._after_backward)
        trainer.global_step += 1; trainer.batch_score = e.task.batch_score(trainer.logits, y); trainer.fire("on_train_batch_end")
    torch.cuda.set_sync_debug_mode(0)
print(f"host syncs in 100 training steps (guard and TensorBoard included): {len(caught)}")
PY

python3 - "$RUNS" >> "$OUT/summary.txt" <<'PY'
import csv, json, sys, pathlib
rows = []
for run_json in sorted(pathlib.Path(sys.argv[1]).glob("*/*/run.json")):
    record = json.loads(run_json.read_text())
    metrics = list(csv.DictReader(open(run_json.parent / "metrics.csv")))
    rows.append({"run": run_json.parent.parent.name, "test_acc": record.get("test_acc"), "train_seconds": record.get("train_seconds"),
                 "world_size": record.get("world_size"), "img_per_s_after_epoch_1": [float(m["samples_per_s"]) for m in metrics[1:]]})
json.dump(rows, open(sys.argv[1] + "/../summary.json", "w"), indent=1)
for r in rows: print(r)
PY
cp /tmp/summary.json "$OUT/" 2>/dev/null
tar czf "$OUT/logs.tar.gz" -C /tmp gpu-logs
