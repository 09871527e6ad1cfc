import math

import pytest
import torch
import torch.nn.functional as F

from tests.text.tiny import write_emotion
from trainlab.data import DATASETS
from trainlab.data.text import prepare_text_data
from trainlab.errors import UsageError
from trainlab.models import MODELS
from trainlab.models.registry import TEXT_MODEL_INPUTS
from trainlab.models.text import sinusoidal_positions
from trainlab.text.vocab import Vocabulary

VOCABULARY = Vocabulary([f"w{i}" for i in range(20)])
CORPUS = [[f"w{i}", f"w{(i * 7) % 20}", f"w{(i * 3) % 20}"] for i in range(40)]
TEXT_MODELS = [name for name in MODELS.names() if set(TEXT_MODEL_INPUTS) <= set(MODELS.injected(name))]


def build(name, **args):
    inputs = {"vocabulary": VOCABULARY, "num_classes": 3, "corpus": CORPUS, "load_pretrained": True}
    return MODELS.build(name, **{k: inputs[k] for k in MODELS.injected(name)}, **args)


def padded(*texts):
    """(B, T) ids of the given texts, right-padded with 0."""
    ids = torch.zeros(len(texts), max(map(len, texts)), dtype=torch.int64)
    for row, text in enumerate(texts):
        ids[row, : len(text)] = torch.tensor(text)
    return ids


def test_the_text_models_are_registered():
    assert TEXT_MODELS == ["lstm_classifier", "transformer_classifier"]


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_every_text_model_trains_at_a_tiny_size(name):
    """Forward gives (B, classes); backward reaches every parameter."""
    torch.manual_seed(0)
    model = build(name)
    logits = model(padded([2, 3, 4, 5], [6, 7], [8]))
    assert logits.shape == (3, 3)
    logits.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_lstm_with_packing_gives_the_outputs_of_padding_on_equal_length_inputs(pooling):
    torch.manual_seed(0)
    padding = build("lstm_classifier", pooling=pooling, num_layers=2, hidden_size=8, pack=False).eval()
    packing = build("lstm_classifier", pooling=pooling, num_layers=2, hidden_size=8, pack=True).eval()
    packing.load_state_dict(padding.state_dict())
    ids = torch.randint(2, len(VOCABULARY), (5, 7))
    assert torch.allclose(padding(ids), packing(ids), atol=1e-6)


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_packed_lstm_output_of_a_text_does_not_depend_on_the_padding(pooling):
    torch.manual_seed(0)
    model = build("lstm_classifier", pooling=pooling, hidden_size=8, pack=True).eval()
    alone = model(padded([2, 3, 4]))
    beside_a_longer_one = model(padded([2, 3, 4], [5, 6, 7, 8, 9, 10]))[:1]
    assert torch.allclose(alone, beside_a_longer_one, atol=1e-6)


@pytest.mark.parametrize(("pooling", "positions", "norm_first"),
                         [("cls", "sinusoidal", True), ("mean", "learned", True), ("mean", "sinusoidal", False)])  # fmt: skip
def test_transformer_attention_rows_sum_to_one_and_padding_changes_nothing(pooling, positions, norm_first):
    torch.manual_seed(0)
    model = build("transformer_classifier", dim=16, heads=4, layers=2, ff_dim=32, pooling=pooling, positions=positions,
                  norm_first=norm_first).eval()  # fmt: skip
    logits, attention = model(padded([2, 3, 4], [5, 6, 7, 8, 9, 10]), return_attention=True)
    extra = 1 if pooling == "cls" else 0
    assert len(attention) == 2 and attention[0].shape == (2, 4, 6 + extra, 6 + extra)
    for weights in attention:
        assert torch.allclose(weights.sum(-1), torch.ones(2, 4, 6 + extra))
        assert (weights[0, :, :, 3 + extra :] == 0).all(), "no attention to padding"
    alone = model(padded([2, 3, 4]))
    assert torch.allclose(logits[:1], alone, atol=1e-5)


def test_sinusoidal_positions_follow_the_formula():
    table = sinusoidal_positions(10, 6)
    p, i = 7, 2
    assert table[p, 2 * i] == pytest.approx(math.sin(p / 10000 ** (2 * i / 6)))
    assert table[p, 2 * i + 1] == pytest.approx(math.cos(p / 10000 ** (2 * i / 6)))


def test_one_hot_embedding_has_the_vocabularys_size_and_pad_is_zero():
    model = build("lstm_classifier", embedding="onehot", hidden_size=4)
    rows = model.embedding(padded([2, 3], [4]))
    assert rows.shape == (2, 2, len(VOCABULARY) - 1) and rows[1, 1].sum() == 0 and rows[0, 0, 1] == 1


@pytest.mark.parametrize(("args", "message"), [
    ({"embedding": "learned", "vectors": "x.txt"}, "for embedding: glove"),
    ({"embedding": "learned", "freeze": True}, "needs embedding word2vec or glove"),
    ({"embedding": "onehot", "embedding_dim": 10}, "leave embedding_dim out"),
])  # fmt: skip
def test_lstm_arguments_that_do_not_go_together_are_refused(args, message):
    with pytest.raises(ValueError, match=message):
        build("lstm_classifier", **args)


def test_transformer_refuses_a_width_heads_cannot_split_and_too_long_batches():
    with pytest.raises(ValueError, match="multiple of heads"):
        build("transformer_classifier", dim=10, heads=4)
    with pytest.raises(UsageError, match="max_length=4"):
        build("transformer_classifier", dim=8, heads=2, max_length=4)(padded([2, 3, 4, 5, 6]))


@pytest.fixture
def tiny_data(tmp_path):
    dataset = DATASETS.build("emotion", root=str(write_emotion(tmp_path / "emotion")))
    return prepare_text_data(dataset, batch_size=16, eval_batch_size=64, val_size=0.1, split_seed=0, seed=0,
                             device=torch.device("cpu"))  # fmt: skip


def fit(model, data, steps=120, lr=0.02):
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    step = 0
    while step < steps:
        for ids, labels in data.train:
            loss = F.cross_entropy(model(ids), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
    model.eval()
    with torch.no_grad():
        return sum((model(ids).argmax(1) == labels).sum().item() for ids, labels in data.train) / len(data.corpus)


@pytest.mark.parametrize("embedding", ["onehot", "learned", "word2vec", "glove"])
def test_each_embedding_kind_fits_a_tiny_dataset(tiny_data, tmp_path, embedding):
    torch.manual_seed(0)
    args = {"embedding": embedding, "hidden_size": 16, "dropout": 0.0}
    if embedding in ("learned", "word2vec"):
        args["embedding_dim"] = 16
    if embedding == "word2vec":
        pytest.importorskip("gensim")
    if embedding == "glove":  # random vectors for the tiny vocabulary, frozen: the LSTM must learn to read them
        generator = torch.Generator().manual_seed(0)
        lines = [f"{w} " + " ".join(f"{v:.4f}" for v in torch.randn(12, generator=generator).tolist())
                 for w in tiny_data.vocabulary.words]  # fmt: skip
        (tmp_path / "glove.txt").write_text("\n".join(lines) + "\n")
        args |= {"vectors": str(tmp_path / "glove.txt"), "freeze": True}
    inputs = tiny_data.model_inputs()
    model = MODELS.build("lstm_classifier", **inputs, **args)
    if embedding == "glove":
        assert model.vectors_coverage.share == 1.0
    assert fit(model, tiny_data) == 1.0


def test_transformer_fits_a_tiny_dataset(tiny_data):
    torch.manual_seed(0)
    model = MODELS.build("transformer_classifier", vocabulary=tiny_data.vocabulary, num_classes=6, dim=32, heads=4,
                         layers=1, ff_dim=64, dropout=0.0)  # fmt: skip
    assert fit(model, tiny_data, lr=0.003) == 1.0
