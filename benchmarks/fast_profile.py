"""Where the time of the fast recipe's training step goes (issue 20), against a plain PyTorch step of the same network.

    TRAINLAB_DATA=/path/to/data python -m benchmarks.fast_profile --steps 12 [--name fast_profile-intel-amx]

Builds `cifar10/fast` as a run does (data, airbench, batch norm, whitening, SGD, one-cycle, Lookahead), then:
1. times `--steps` training steps through trainlab's loop pieces (loader with augmentation, step, callbacks) and
   the same steps as a plain PyTorch loop on one fixed batch (no data, no augmentation, no callbacks);
2. profiles the trainlab steps with torch.profiler and sums the self CPU time by kind of operator:
   convolutions, batch norm, GELU, pooling, the optimizer, the loss, augmentation and data (gather, normalise);
3. times one evaluation pass of 1,000 test images with and without the test-time flips.
Results go to benchmarks/results/NAME.json (`--name`, fast_profile by default: one per machine). Run it alone.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch

from benchmarks.common import save, table

KINDS = (  # operator name fragment -> kind; the first match wins
    ("convolution", "convolutions"), ("conv", "convolutions"), ("batch_norm", "batch norm"), ("gelu", "GELU"),
    ("max_pool", "pooling"), ("sgd", "optimizer"), ("_foreach", "optimizer"), ("cross_entropy", "loss"),
    ("log_softmax", "loss"), ("nll", "loss"), ("index_select", "data + augmentation"), ("gather", "data + augmentation"),
    ("index", "data + augmentation"), ("where", "data + augmentation"), ("sub", "elementwise"), ("div", "elementwise"),
    ("mul", "elementwise"), ("add", "elementwise"), ("copy", "copies and layout"), ("to", "copies and layout"),
    ("clone", "copies and layout"), ("contiguous", "copies and layout"),
)  # fmt: skip


def kind_of(name: str) -> str:
    lowered = name.lower()
    return next((kind for fragment, kind in KINDS if fragment in lowered), "other")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--name", default="fast_profile", help="results file stem in benchmarks/results/")
    args = parser.parse_args()
    from trainlab.config import load_config
    from trainlab.engine.averaging import Lookahead
    from trainlab.engine.step import training_step
    from trainlab.experiment import build_experiment
    from trainlab.models.tuning import add_test_time_augmentation

    config, _ = load_config("cifar10/fast")
    e = build_experiment(config)
    lookahead = Lookahead(config.lookahead.every, config.lookahead.decay, config.lookahead.ramp)
    fake = type("T", (), {"model": e.model, "epochs": config.epochs, "train_loader": e.data.train, "global_step": 0})()
    lookahead.on_fit_start(fake)
    batches = iter(e.data.train)

    def trainlab_step() -> None:
        x, y = next(batches)
        training_step(e.model, e.optimizer, e.loss_fn, x, y, e.placement)
        e.scheduler.step()
        fake.global_step += 1
        lookahead.on_train_batch_end(fake)

    x0, y0 = next(iter(e.data.train))

    def plain_step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = e.loss_fn(e.model(x0), y0)
        e.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        e.optimizer.step()

    batch = config.data.batch_size
    for step in (trainlab_step, plain_step):
        step()  # warm-up
    rates = {}
    for _ in range(2):  # interleaved
        for name, step in (("trainlab", trainlab_step), ("plain PyTorch", plain_step)):
            started = time.perf_counter()
            for _ in range(args.steps // 2):
                step()
            rates.setdefault(name, []).append(batch * (args.steps // 2) / (time.perf_counter() - started))
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(4):
            trainlab_step()
    by_kind: dict[str, float] = defaultdict(float)
    for event in profiler.key_averages():
        by_kind[kind_of(event.key)] += event.self_cpu_time_total / 1e6
    total = sum(by_kind.values())
    test_x = next(iter(e.data.test))[0]
    evaluation = {}
    for mode in ("none", "flip_translate"):
        vars(e.model).pop("forward", None)  # the preset's test-time flips off, then on again
        model = add_test_time_augmentation(e.model, mode).eval()
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(test_x)
            started = time.perf_counter()
            model(test_x)
        evaluation[mode] = len(test_x) / (time.perf_counter() - started)
    rows = [{"kind": kind, "share of step time": f"{seconds / total:.1%}"} for kind, seconds in
            sorted(by_kind.items(), key=lambda item: -item[1])]  # fmt: skip
    summary = {name: sum(values) / len(values) for name, values in rates.items()}
    print(table([{"path": name, "train img/s": rate} for name, rate in summary.items()]))
    print(table(rows))
    print(table([{"evaluation": mode, "img/s": rate} for mode, rate in evaluation.items()]))
    print(save(args.name, {"train_images_per_s": summary, "step_time_by_kind": dict(by_kind),
                           "eval_images_per_s": evaluation, "batch_size": batch}))  # fmt: skip


if __name__ == "__main__":
    main()
