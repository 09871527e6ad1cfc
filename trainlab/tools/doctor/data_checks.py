"""Check 2, the data: what the model will be fed, looked at before any training.

Labels are integers within [0, C); no input is NaN or infinite; inputs are normalised (per
channel mean about 0, std about 1; token ids of text are left alone); every class has training
examples, and the balance between them; the first batch mixes classes (a sorted, unshuffled
loader gives batches of one class); and a picture of a training batch with its labels, as the
model gets it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from trainlab.evaluation.grid import sample_grid_figure
from trainlab.tools.doctor.checks import FAIL, WARN, Batch, Check, Problem, from_problems

DATA_BATCHES = 20  # batches read for the input statistics: 2,560 CIFAR images pin the channel means to ~0.02
MEAN_TOLERANCE = 0.5  # |mean| per channel after normalisation; 0 exactly on the un-augmented training split
STD_RANGE = (0.5, 2.0)  # std per channel after normalisation; 1 exactly on the un-augmented training split
IMBALANCE_WARN = 3.0  # largest / smallest class: from 3x, accuracy hides how the small classes fare
GRID_IMAGES = 32  # pictured training images


def check_data(
    batches: list[Batch], labels: torch.Tensor, classes: Sequence[str],
    preview: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> Check:  # fmt: skip
    """Inspect training `batches` (inputs as the model gets them) and all training `labels` (N,).

    `preview` is a batch of images as floats in [0, 1] (B, C, H, W) with labels, before
    normalisation, for the picture; without it the first batch is pictured, rescaled per image.
    """
    token_ids = not batches[0][0].is_floating_point()  # text: integer ids, nothing to normalise
    shapes = {tuple(x.shape[1:]) for x, _ in batches}
    if len(shapes) == 1:
        inputs = torch.cat([x.detach().float().cpu() for x, _ in batches])  # (N, C, H, W) or (N, F)
    else:  # sequences padded to each batch's longest: every value as one feature, (values, 1)
        inputs = torch.cat([x.detach().float().cpu().reshape(-1, 1) for x, _ in batches])
    mean, std = _channel_stats(inputs.nan_to_num(0.0, 0.0, 0.0))
    examples = sum(len(y) for _, y in batches)
    evidence = {
        "examples_read": examples, "input_shape": list(shapes.pop()) if len(shapes) == 1 else "varies",
        "channel_mean": mean.tolist(),
        "channel_std": std.tolist(), "nan_values": int(inputs.isnan().sum()), "infinite_values": int(inputs.isinf().sum()),
        "label_dtype": str(labels.dtype), "label_min": labels.min().item(), "label_max": labels.max().item(),
    }  # fmt: skip
    regression = not classes  # a regression's targets are values: no classes to count or mix
    problems = [] if regression else _label_problems(labels, classes, evidence)
    if evidence["nan_values"] or evidence["infinite_values"]:
        what = f"{evidence['nan_values']} NaN and {evidence['infinite_values']} infinite input values"
        problems.append(Problem(FAIL, what, "find the broken inputs (a division by a zero std, a corrupt file) before training"))
    if std.max().item() < 1e-6:
        problems.append(Problem(FAIL, "every input value is the same", "the inputs are blank: check how they are read"))
    elif not token_ids and not _normalised(mean, std):
        problems.append(Problem(WARN, f"inputs not normalised (mean {_values(mean)}, std {_values(std)})",
                                "standardise each channel with the training split's mean and std"))  # fmt: skip
    first = batches[0][1]
    evidence["first_batch_classes"] = 0 if regression else int(first.unique().numel())
    if len(classes) > 1 and len(first) >= 2 * len(classes) and evidence["first_batch_classes"] == 1:
        problems.append(Problem(WARN, f"the first batch holds {len(first)} examples of one class",
                                "shuffle the training set: one-class batches swing the model from class to class"))  # fmt: skip

    summary = f"{examples:,} inputs" + ("" if token_ids else f": mean {_values(mean)}, std {_values(std)}")
    if "imbalance" in evidence:
        summary += f"; {len(classes)} classes, balance {evidence['imbalance']:.1f}:1"
    check = from_problems("data", problems, evidence, (summary, "labels in range, inputs finite and normalised, "
                                                                "classes present and mixed in the batches"))  # fmt: skip
    images, shown_labels = preview if preview is not None else _rescaled(batches[0])
    if images.ndim == 4 and images.shape[1] in (1, 3) and not regression:  # a picture only of labelled images
        images, shown_labels = images[:GRID_IMAGES].cpu(), shown_labels[:GRID_IMAGES].tolist()
        check.figures["data_batch"] = sample_grid_figure(images, shown_labels, classes)
    return check


def _label_problems(labels: torch.Tensor, classes: Sequence[str], evidence: dict) -> list[Problem]:
    """Integer labels within [0, C), each class present, the balance; the class counts go into `evidence`."""
    if labels.is_floating_point() or labels.is_complex():
        return [Problem(FAIL, f"labels are {labels.dtype}", "class labels must be integers 0..C-1")]
    low, high = evidence["label_min"], evidence["label_max"]
    if low < 0 or high >= len(classes):
        advice = f"labels must be 0..{len(classes) - 1}: shift 1-based labels down, or fix the class list"
        return [Problem(FAIL, f"labels span {low}..{high} for {len(classes)} classes", advice)]
    counts = torch.bincount(labels.cpu(), minlength=len(classes))
    evidence["class_counts"] = dict(zip(classes, counts.tolist(), strict=True))
    evidence["imbalance"] = counts.max().item() / max(counts.min().item(), 1)
    missing = [name for name, count in evidence["class_counts"].items() if count == 0]
    if missing:
        return [Problem(FAIL, f"no training example of {', '.join(missing[:5])}",
                        "every class needs training examples: check the class folders and the split")]  # fmt: skip
    if evidence["imbalance"] >= IMBALANCE_WARN:
        advice = "read macro F1 and per-class recall, not accuracy; try class weights or a balanced sampler"
        return [Problem(WARN, f"classes imbalanced {evidence['imbalance']:.1f}:1", advice)]
    return []


def _channel_stats(inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std per channel (C,) of (N, C, ...) inputs; of all values (1,) for flat (N, F) inputs."""
    per_channel = inputs.transpose(0, 1).reshape(inputs.shape[1], -1) if inputs.ndim > 2 else inputs.reshape(1, -1)
    return per_channel.mean(1), per_channel.std(1)


def _normalised(mean: torch.Tensor, std: torch.Tensor) -> bool:
    low, high = STD_RANGE
    return mean.abs().max().item() <= MEAN_TOLERANCE and all(low <= s <= high for s in std.tolist())


def _rescaled(batch: Batch) -> Batch:
    """A normalised batch rescaled to [0, 1] per image, to be pictured."""
    images = batch[0].detach().float().cpu()
    shape = (-1, *[1] * (images.ndim - 1))
    low, high = images.flatten(1).min(1).values.view(shape), images.flatten(1).max(1).values.view(shape)
    return (images - low) / (high - low).clamp_min(1e-12), batch[1]


def _values(values: torch.Tensor) -> str:
    return "/".join(f"{v:.2f}" for v in values.tolist()[:4]) + ("/..." if len(values) > 4 else "")
