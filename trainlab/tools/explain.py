"""`trainlab explain RUN`: which words a trained text model relies on, per class, on the test set.

The run's model (Predictor.from_run) scores every position of every test sentence by one method
(trainlab.explain.attribution); the scores become words (trainlab.explain.words), words are ranked per
class over the correctly predicted sentences (ranking.py), each method's faithfulness is measured by
deleting words (faithfulness.py), and RUN/explain/ receives tokens.csv, tokens.md, the bar charts,
attention maps of one sentence, explain.json and explain.html, replaced whole.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from trainlab.config import load_config
from trainlab.data.pieces import pad_rows
from trainlab.errors import UsageError
from trainlab.explain import attribution
from trainlab.explain.attention_maps import attention_maps_figure
from trainlab.explain.faithfulness import deletion_drops, deletions
from trainlab.explain.outputs import write_bar_charts, write_tokens
from trainlab.explain.page import write_page
from trainlab.explain.ranking import TokenRank, rank_tokens
from trainlab.explain.words import ExplainedText, sentence_words
from trainlab.evaluation.plots import save_figure
from trainlab.inference import Predictor
from trainlab.run_folder import RunFolder
from trainlab.tools.evaluate import check_data_overrides, load_test_split
from trainlab.utils.io import fresh_folder, publish_folder, write_json

EXPLAIN_DIR = "explain"
METHODS_HELP = attribution.METHODS
BATCH = 32
DESCRIPTIONS = {
    "cls": "the last layer's attention from the sentence's query ([CLS], or the mean of the tokens for mean pooling), averaged over heads",
    "rollout": "attention rollout (Abnar & Zuidema 2020): 0.5·A + 0.5·I per layer, rows renormalised, multiplied across layers",
    "gradient": "attention × its gradient for the predicted class, propagated across layers (Chefer et al. 2021)",
    "grad_input": "gradient × input on the token embeddings for the predicted class (Captum)",
    "ig": "integrated gradients on the token embeddings from the padding embedding, for the predicted class (Captum)",
}


@dataclass
class Explanation:
    folder: Path  # RUN/explain
    method: str
    texts: list[ExplainedText]
    ranks: list[TokenRank]
    faithfulness: list[dict]


def explain_run(
    run_dir: Path, *, method: str | None = None, checkpoint: str = "best", top: int = 10, min_count: int = 3,
    stopwords: bool = False, samples: int = 300, k: int = 3, sentence: int | None = None,
    ig_steps: int = attribution.IG_STEPS, overrides: Sequence[str] = (), say: Callable[[str], None] = lambda line: None,
) -> Explanation:  # fmt: skip
    """Explain a finished text run on its test split; `stopwords` True keeps stopwords among the ranked words;
    faithfulness deletes `k` words from up to `samples` sentences for every method the model supports."""
    check_data_overrides(overrides, "explain")
    folder = RunFolder.open(run_dir)
    predictor = Predictor.from_run(folder.path, checkpoint)
    model, preprocess, name = predictor.model, predictor.preprocess, predictor.config.model.name
    if not hasattr(preprocess, "segment"):
        raise UsageError(f"trainlab explain reads text models; {folder.path} is a model of {preprocess.kind} inputs")
    available = attribution.methods_for(model)
    method = method or (available[0] if available else "cls")
    attribution.check_method(model, method, name)
    config, _ = load_config(str(folder.path / "config.yaml"), list(overrides))
    test, _ = load_test_split(folder, config, predictor, overrides, command="explain")
    probabilities, labels = predictor.predict_loader(test)
    confidence, predicted = probabilities.max(1)
    texts = test.examples(range(len(labels)))
    segments = [preprocess.segment(text) for text in texts]
    device = predictor.placement.device

    def scores_of(chosen: str, indices: Sequence[int]) -> dict[int, list[float]]:
        found: dict[int, list[float]] = {}
        ordered = sorted(indices, key=lambda i: len(segments[i].ids))  # batches of similar length: little padding
        for start in range(0, len(ordered), BATCH):
            batch = ordered[start : start + BATCH]
            ids = pad_rows([segments[i].ids for i in batch], preprocess.pad_id).to(device)
            scores = attribution.attribute(model, chosen, ids, predicted[batch].to(device), preprocess.pad_id, ig_steps=ig_steps)
            for row, i in zip(scores.cpu().tolist(), batch):
                found[i] = row[: len(segments[i].ids)]
        return found

    def explained(scores: dict[int, list[float]]) -> list[ExplainedText]:
        return [ExplainedText(i, texts[i], sentence_words(segments[i].pieces, scores[i], word_ids=segments[i].word_ids,
                                                          special=segments[i].special, stopwords=stopwords),
                              int(labels[i]), int(predicted[i]), float(confidence[i])) for i in sorted(scores)]  # fmt: skip

    if sentence is not None and not 0 <= sentence < len(segments):
        raise UsageError(f"--sentence {sentence}: the test split has sentences 0..{len(segments) - 1}")
    target = fresh_folder(folder.path, EXPLAIN_DIR)  # before the work: a folder that cannot be written fails at once
    try:
        say(f"{method}: scoring {len(texts):,} test sentences")
        chosen = explained(scores_of(method, range(len(texts))))
        ranks = rank_tokens(chosen, preprocess.classes, min_count=min_count, top=top)

        probe = _sample([t.index for t in chosen if t.predicted == t.label], samples)
        faithfulness = []
        for other in available:
            say(f"faithfulness of {other}: deleting {k} words from up to {len(probe):,} sentences")
            cases = deletions(explained(scores_of(other, probe)), [segments[i].ids for i in probe], k)
            drops = deletion_drops(_class_probability(model, preprocess.pad_id, device), cases, k)
            faithfulness.append({"method": other, "k": k, **drops})

        write_tokens(target, ranks, method, classes=preprocess.classes)
        charts = write_bar_charts(target, ranks, preprocess.classes, method=method)
        if "cls" in available:
            shown = sentence if sentence is not None else probe[0] if probe else 0
            _write_attention_maps(model, segments, shown, preprocess.pad_id, device, target)
        write_json(target / "explain.json", {
            "run": folder.path.name, "checkpoint": checkpoint, "epoch": predictor.epoch, "method": method,
            "methods": available, "min_count": min_count, "top": top, "stopwords_ranked": stopwords,
            "sentences": len(chosen), "correct": sum(t.predicted == t.label for t in chosen), "faithfulness": faithfulness,
        })  # fmt: skip
        write_page(target, title=f"{folder.path.name}: {name}, {method}", method=method, texts=chosen,
                   classes=preprocess.classes, ranks=ranks, faithfulness=faithfulness, bar_charts=charts,
                   description=DESCRIPTIONS[method])  # fmt: skip
        final = publish_folder(target, folder.path / EXPLAIN_DIR)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    return Explanation(final, method, chosen, ranks, faithfulness)


def _sample(indices: list[int], count: int) -> list[int]:
    """`count` of `indices`, spread evenly over them (the same ones every time)."""
    if len(indices) <= count:
        return indices
    step = len(indices) / count
    return [indices[int(i * step)] for i in range(count)]


def _class_probability(model: torch.nn.Module, pad_id: int, device: torch.device) -> Callable[[list[list[int]], list[int]], torch.Tensor]:
    @torch.inference_mode()
    def probability(rows: list[list[int]], classes: list[int]) -> torch.Tensor:
        ids = pad_rows(rows, pad_id).to(device)
        return model(ids).float().softmax(1)[torch.arange(len(rows)), torch.tensor(classes)].cpu()

    return probability


def _write_attention_maps(model, segments, index: int, pad_id: int, device: torch.device, folder: Path) -> None:
    segment = segments[index]
    with torch.inference_mode():
        _, attentions = model(torch.tensor([segment.ids], device=device), return_attention=True)
    labels = (["[CLS]"] * model.attention_offset) + segment.pieces
    save_figure(attention_maps_figure([a[0].float().cpu() for a in attentions], labels, title=f"test sentence {index}"),
                folder / f"attention-{index}.png")  # fmt: skip
