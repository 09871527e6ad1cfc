"""`trainlab explain` on runs trained on a synthetic set where one planted word decides each label.

Three model families are trained once per module (an LSTM, a transformer encoder, a tiny BERT); each method
must rank the planted word of a class first for that class, and deleting the top words must hurt the
prediction more than deleting random ones."""

import csv
import json
import random
import shutil

import pytest

from tests.test_cli import assert_user_error, trainlab
from tests.text.tiny import FILLERS, KEYWORDS
from tests.text.tiny_bert import write_tiny_bert
from trainlab.data.text import EMOTION_LABELS
from trainlab.explain.outputs import read_tokens

PLANTED = {label: KEYWORDS[label][0] for label in EMOTION_LABELS}  # sad, happy, loving, angry, scared, amazed
COMMON = ["data.name=emotion", "data.batch_size=16", "progress=false", "optimizer.name=adamw"]
MODELS = {
    "lstm": [*COMMON, "model.name=lstm_classifier", "model.embedding_dim=16", "model.hidden_size=16", "optimizer.lr=0.01", "epochs=6"],
    "transformer": [*COMMON, "model.name=transformer_classifier", "model.dim=16", "model.heads=2", "model.layers=2",
                    "model.ff_dim=32", "model.dropout=0", "optimizer.lr=0.005", "epochs=8"],
    "bert": [*COMMON, "model.name=bert_classifier", "model.max_length=32", "optimizer.lr=0.003", "epochs=8"],
}  # fmt: skip


def write_planted(root, per_class=(40, 5, 20), seed=0):
    """train/val/test files: a few fillers around the one planted word of the text's label."""
    root.mkdir(parents=True)
    rng = random.Random(seed)
    for split, count in zip(("train", "val", "test"), per_class):
        lines = []
        for _ in range(count):
            for label in EMOTION_LABELS:
                words = rng.choices(FILLERS, k=rng.randint(3, 7))
                words.insert(rng.randrange(len(words) + 1), PLANTED[label])
                lines.append(f"{' '.join(words)};{label}")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{family: run folder}, trained once for the module."""
    base = tmp_path_factory.mktemp("explain")
    data = write_planted(base / "emotion")
    bert = write_tiny_bert(base / "tinybert")
    folders = {}
    for family, overrides in MODELS.items():
        extra = [f"model.pretrained={bert}"] if family == "bert" else []
        result = trainlab("run", *overrides, *extra, f"data.root={data}", f"output_dir={base / 'runs'}", f"name={family}")
        assert result.returncode == 0, result.stderr
        folders[family] = next((base / "runs").glob(f"{family}-*"))
    return folders


@pytest.mark.parametrize("family, method", [
    ("lstm", "grad_input"), ("lstm", "ig"),
    ("transformer", "cls"), ("transformer", "rollout"), ("transformer", "gradient"), ("transformer", "ig"), ("bert", "cls"), ("bert", "rollout"), ("bert", "gradient"), ("bert", "ig"),
])  # fmt: skip
def test_the_planted_word_comes_out_first_for_its_class(runs, family, method):
    result = trainlab("explain", str(runs[family]), "--method", method, "--samples", "30", "-k", "1")
    assert result.returncode == 0, result.stderr
    ranks = read_tokens(runs[family] / "explain")
    first = {r.class_name: r.token for r in ranks if r.rank == 1}
    assert first == PLANTED, result.stdout
    record = json.loads((runs[family] / "explain" / "explain.json").read_text())
    assert record["method"] == method and record["sentences"] == 120


def test_deleting_the_top_words_lowers_the_probability_more_than_random_words(runs):
    result = trainlab("explain", str(runs["bert"]), "--samples", "60", "-k", "1")
    assert result.returncode == 0, result.stderr
    rows = json.loads((runs["bert"] / "explain" / "explain.json").read_text())["faithfulness"]
    assert {row["method"] for row in rows} == {"cls", "rollout", "gradient", "grad_input", "ig"}
    for row in rows:
        if row["method"] in ("gradient", "grad_input", "ig"):  # class-specific methods: the planted word goes first
            assert row["top_drop"] > row["random_drop"] + 0.1, row
        assert row["count"] > 0


def test_outputs_parse_and_the_page_is_self_contained(runs):
    result = trainlab("explain", str(runs["transformer"]), "--sentence", "3", "--top", "2")
    assert result.returncode == 0, result.stderr
    folder = runs["transformer"] / "explain"
    with open(folder / "tokens.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["class", "rank", "token", "score", "mean", "lift", "count"] and max(int(r["rank"]) for r in rows) == 2
    assert "| rank | token |" in (folder / "tokens.md").read_text() or "rank" in (folder / "tokens.md").read_text()
    assert len(list(folder.glob("bars-*.png"))) == 6 and (folder / "attention-3.png").is_file()
    page = (folder / "explain.html").read_text()
    assert "http" not in page and page.count("happy") >= 20
    assert not list(runs["transformer"].glob(".explain*"))  # no temporary folder left


def test_explain_refuses_an_image_run_a_wrong_method_and_an_unfinished_run(runs, tmp_path):
    assert trainlab("run", "model.channels=[4,4,8,8]", "model.hidden=[16,16]", "epochs=1", "progress=false", cwd=tmp_path).returncode == 0
    image_run = next((tmp_path / "runs").iterdir())
    assert_user_error(trainlab("explain", str(image_run)), 2, "explain reads text models", "image inputs")
    assert_user_error(trainlab("explain", str(runs["lstm"]), "--method", "rollout"), 2,
                      "method 'rollout' does not apply to model lstm_classifier; it supports: grad_input, ig")
    assert_user_error(trainlab("explain", str(runs["lstm"]), "--method", "attention"), 2, "--method 'attention'")
    record = json.loads((image_run / "run.json").read_text())
    (image_run / "run.json").write_text(json.dumps({**record, "status": "interrupted"}))
    assert_user_error(trainlab("explain", str(image_run)), 2, "did not finish")


def test_the_folder_a_killed_explain_left_is_removed_by_the_next_one(runs):
    import subprocess

    from trainlab.utils import io

    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid whose process is gone
    leftover = runs["lstm"] / f".explain.{io._host()}.{dead.pid}.tmp"
    leftover.mkdir()
    (leftover / "tokens.csv").write_text("half")
    assert trainlab("explain", str(runs["lstm"]), "--samples", "10").returncode == 0
    assert not leftover.exists() and (runs["lstm"] / "explain" / "explain.html").is_file()


def test_explain_takes_data_keys_only_and_says_how_to_point_it_at_moved_data(runs, tmp_path):
    assert_user_error(trainlab("explain", str(runs["lstm"]), "model.hidden_size=8"), 2,
                      "trainlab explain: cannot override 'model.hidden_size'", "only data.* keys")
    moved = tmp_path / "lstm-copy"
    shutil.copytree(runs["lstm"], moved)
    data_root = str(runs["lstm"].parent.parent / "emotion")
    config = moved / "config.yaml"
    config.write_text(config.read_text().replace(data_root, str(tmp_path / "gone")))
    result = trainlab("explain", str(moved))
    assert result.returncode in (1, 2) and f"trainlab explain {moved} data.root=/new/place" in result.stderr, result.stderr
    assert trainlab("explain", str(moved), f"data.root={data_root}", "--samples", "10").returncode == 0


def test_a_read_only_run_folder_or_a_missing_sentence_fails_before_the_work(runs, tmp_path, read_only_dir):
    frozen = tmp_path / "frozen"
    shutil.copytree(runs["transformer"], frozen)
    read_only_dir(frozen)
    result = trainlab("explain", str(frozen))
    assert_user_error(result, 2, f"cannot write into {frozen}")
    assert "scoring" not in result.stdout  # refused before any sentence was scored
    result = trainlab("explain", str(runs["transformer"]), "--sentence", "120")
    assert_user_error(result, 2, "--sentence 120: the test split has sentences 0..119")
    assert not list(runs["transformer"].glob(".explain*"))
