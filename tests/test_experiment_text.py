"""The experiment runner on text: the same run folder as for images, plus data.json and vocab.txt."""

import csv
import io
import json

import pytest
import torch
from rich.console import Console
from typer.testing import CliRunner

from tests.test_cli import assert_user_error, trainlab
from tests.test_experiment import interrupt_after_epoch
from tests.text.tiny import write_emotion
from trainlab.cli import app
from trainlab.config import load_config
from trainlab.errors import ConfigError, UsageError
from trainlab.experiment import run_experiment
from trainlab.tools.evaluate import evaluate_run

TEXT_DATA = ["data.name=emotion", "data.batch_size=16", "epochs=2", "progress=false"]
TINY_TEXT = [*TEXT_DATA, "model.name=lstm_classifier", "model.embedding_dim=8", "model.hidden_size=8"]


@pytest.fixture
def emotion(tmp_path):
    return write_emotion(tmp_path / "data" / "emotion")


def run(*overrides, base=TINY_TEXT):
    config, source = load_config(None, [*base, *overrides])
    output = io.StringIO()
    folder = run_experiment(config, source, console=Console(file=output, width=200)).path
    return folder, output.getvalue()


def test_text_run_folder_holds_the_reports_and_the_data_record(emotion):
    with (emotion / "test.txt").open("a") as f:
        f.write("i feel xylophonic;joy\n")
    folder, printed = run("optimizer.lr=0.01")
    record = json.loads((folder / "run.json").read_text())
    assert record["status"] == "finished" and 0 <= record["test_macro_f1"] <= 1
    assert [r["epoch"] for r in csv.DictReader((folder / "metrics.csv").open())] == ["1", "2"]
    header = next(csv.reader((folder / "confusion_matrix.csv").open()))
    assert header[1:] == ["sadness", "joy", "love", "anger", "fear", "surprise"]
    assert "macro avg" in json.loads((folder / "classification_report.json").read_text())
    for name in ("curves.png", "confusion_matrix.png", "report.html", "summary.txt", "checkpoints/best.pt"):
        assert (folder / name).is_file(), name
    assert not (folder / "samples.png").exists()

    data = json.loads((folder / "data.json").read_text())
    assert data["unknown_share"]["test"] > 0 and data["class_counts"]["train"]["joy"] == 10 and data["vectors"] is None
    assert (folder / "vocab.txt").read_text().splitlines()[:2] == ["<pad>", "<unk>"]
    assert "unknown tokens: train 0.00%" in printed and "test accuracy" in printed
    assert "texts/s" in printed and "img/s" not in printed

    test_labels = [line.rsplit(";", 1)[1] for line in (emotion / "test.txt").read_text().splitlines()]
    predicted = [row["true_name"] for row in csv.DictReader((folder / "predictions.csv").open())]
    assert predicted == test_labels, "predictions.csv lists the test texts in the file's order"


def test_resumed_text_run_ends_with_the_weights_of_an_uninterrupted_one(emotion, monkeypatch):
    overrides = ("epochs=3", "precision=fp32", "model.dropout=0.3", "scheduler.name=cosine", "seed=2")
    whole, _ = run(*overrides)
    with monkeypatch.context() as m:
        interrupt_after_epoch(m, stop_at=1)
        with pytest.raises(KeyboardInterrupt):
            run(*overrides)
    interrupted = max(p for p in whole.parent.iterdir() if p != whole)
    config, source = load_config(str(interrupted / "config.yaml"))
    run_experiment(config, source, console=Console(file=io.StringIO()), resume=interrupted)
    final = [torch.load(f / "checkpoints" / "last.pt", weights_only=True)["model"] for f in (whole, interrupted)]
    for key, tensor in final[0].items():
        assert torch.equal(tensor, final[1][key]), key
    assert evaluate_run(interrupted, "last").accuracy == pytest.approx(json.loads((whole / "run.json").read_text())["test_acc"])


def test_transformer_and_pretrained_vectors_run_and_coverage_is_recorded(emotion, tmp_path):
    words = ["i", "feel", "happy", "sad", "angry"]
    (tmp_path / "glove.txt").write_text("".join(f"{w} {i} 0.5 -1\n" for i, w in enumerate(words)))
    folder, printed = run("model.embedding=glove", f"model.vectors={tmp_path / 'glove.txt'}", "model.embedding_dim=null")
    vectors = json.loads((folder / "data.json").read_text())["vectors"]
    assert vectors["dim"] == 3 and vectors["found"] == 5 and "vectors: GloVe file" in printed
    folder, _ = run("model.name=transformer_classifier", "model.dim=8", "model.heads=2", "model.ff_dim=16",
                    "model.layers=1", base=TEXT_DATA)  # fmt: skip
    assert json.loads((folder / "run.json").read_text())["status"] == "finished"


def test_a_run_on_a_glove_file_loads_from_its_folder_after_the_file_is_gone(emotion, tmp_path):
    from trainlab.inference import Predictor

    glove = tmp_path / "glove.txt"
    glove.write_text("".join(f"{w} {i} 0.5 -1 2\n" for i, w in enumerate(["i", "feel", "happy", "sad"])))
    folder, _ = run("model.embedding=glove", f"model.vectors={glove}", "model.embedding_dim=null", "epochs=1")
    assert load_config(str(folder / "config.yaml"))[0].model.args["embedding_dim"] == 4  # read from the file once
    glove.unlink()
    predictor = Predictor.from_run(folder)
    assert predictor.predict(["i feel happy"]).shape == (1, 6)
    assert predictor.model.embedding.weight.shape[1] == 4


def test_a_model_for_the_other_kind_of_data_is_a_config_error(emotion):
    with pytest.raises(ConfigError, match="model 'workshop_cnn' is built from image_size, in_channels, which dataset "
                       "'emotion' does not give; models for this data: lstm_classifier, transformer_classifier"):
        run("model.name=workshop_cnn", base=TEXT_DATA)
    config, source = load_config(None, ["model.name=transformer_classifier", "epochs=1", "progress=false"])
    with pytest.raises(ConfigError, match="built from corpus, pretrained, vocabulary|built from vocabulary.*models for this data: .*workshop_cnn"):
        run_experiment(config, source)
    with pytest.raises(ConfigError, match="augment"):
        run("augment.flip_p=0.5")


@pytest.mark.parametrize(("split", "line", "message"), [
    ("train", "i feel fine happy", "train.txt, line 61: no ';' in the line"),
    ("val", "i feel fine;happiness", "val.txt, line 19: unknown label 'happiness'"),
    ("test", " ;joy", "test.txt, line 19: the text before ';' is empty"),
])  # fmt: skip
def test_a_bad_data_line_stops_the_run_before_any_folder_naming_file_and_line(emotion, isolated, split, line, message):
    with (emotion / f"{split}.txt").open("a") as f:
        f.write(line + "\n")
    with pytest.raises(UsageError, match=message) as error:
        run()
    assert error.value.exit_code == 2 and not (isolated / "runs").exists()


def test_bad_text_inputs_exit_2_from_the_command_line_without_a_traceback(emotion, tmp_path):
    (emotion / "test.txt").write_bytes(b"i feel fine;joy\ni feel caf\xe9;joy\n")
    assert_user_error(trainlab("run", *TINY_TEXT), 2, "test.txt, line 2: not UTF-8")
    (emotion / "test.txt").write_text("i feel fine;joy\n")
    (tmp_path / "glove.txt").write_text("i 1 2 3\nfeel 1 2\n")
    result = trainlab("run", *TINY_TEXT, "model.embedding=glove", f"model.vectors={tmp_path / 'glove.txt'}",
                      "model.embedding_dim=null")  # fmt: skip
    assert_user_error(result, 2, "glove.txt, line 2: 'feel' has 2 values, but the vectors have 3 (line 1)")


def test_show_data_prints_the_training_texts_as_the_model_gets_them(emotion):
    result = CliRunner().invoke(app, ["show-data", "data.name=emotion", "data.max_vocab=5", "--count", "3"])
    lines = result.output.splitlines()
    assert result.exit_code == 0 and len(lines) == 3 and "<unk>" in result.output
    assert lines[0].split()[0] in ("sadness", "joy", "love", "anger", "fear", "surprise")


def test_summary_of_a_text_config_builds_the_model_from_its_data(emotion):
    result = CliRunner().invoke(app, ["summary", *TINY_TEXT, "model.bidirectional=true"])
    assert result.exit_code == 0, result.output
    assert "LSTM" in result.output and "Total params" in result.output
    assert_user_error(trainlab("summary", *TINY_TEXT, "--input", "16"), 2, "reads token ids from its dataset: leave --input out")
    assert_user_error(trainlab("summary", "lstm_classifier", "--input", "16"), 2, "model.name=lstm_classifier")
