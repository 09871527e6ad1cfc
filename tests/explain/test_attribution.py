"""The attribution methods on small models built in the test: shapes, padding, rollout, and which models they fit."""

import pytest
import torch
from torch import nn

from trainlab.errors import UsageError
from trainlab.explain.attribution import attribute, check_method, methods_for, rollout
from trainlab.models.text import lstm_classifier, transformer_classifier
from trainlab.text.vocab import Vocabulary

VOCABULARY = Vocabulary(["i", "feel", "happy", "sad", "so"])
IDS = torch.tensor([[2, 3, 4, 0, 0], [2, 3, 6, 5, 4]])  # two texts, the first padded with 0


def test_rollout_rows_sum_to_one():
    weights = [torch.rand(2, 3, 5, 5).softmax(-1) for _ in range(4)]
    assert torch.allclose(rollout(weights).sum(-1), torch.ones(2, 5), atol=1e-5)


def test_rollout_of_identity_attention_keeps_each_token_on_itself():
    eye = torch.eye(4).expand(1, 2, 4, 4)
    assert torch.allclose(rollout([eye, eye]), torch.eye(4).unsqueeze(0))


@pytest.mark.parametrize("pooling", ["cls", "mean"])
@pytest.mark.parametrize("method", ["cls", "rollout", "gradient", "grad_input", "ig"])
def test_every_method_scores_each_position_and_gives_padding_zero(method, pooling):
    torch.manual_seed(0)
    model = transformer_classifier(vocabulary=VOCABULARY, num_classes=3, dim=8, heads=2, layers=2, ff_dim=16, pooling=pooling)
    scores = attribute(model, method, IDS, torch.tensor([0, 2]), pad_id=0, ig_steps=4)
    assert scores.shape == IDS.shape and scores.dtype == torch.float32
    assert scores[0, 3:].abs().max() == 0 and scores[1].abs().sum() > 0
    if method in ("cls", "rollout"):  # attention from one query: a distribution over the real tokens
        total = scores.sum(1)
        assert torch.allclose(total, torch.ones(2), atol=1e-5) if pooling == "mean" else (total <= 1 + 1e-5).all()


def test_methods_follow_what_the_model_has():
    lstm = lstm_classifier(vocabulary=VOCABULARY, num_classes=3, corpus=None, embedding_dim=4, hidden_size=4)
    transformer = transformer_classifier(vocabulary=VOCABULARY, num_classes=3, dim=8, heads=2, layers=1, ff_dim=8)
    assert methods_for(lstm) == ["grad_input", "ig"]
    assert methods_for(transformer) == ["cls", "rollout", "gradient", "grad_input", "ig"]
    with pytest.raises(UsageError, match="method 'cls' does not apply to model lstm_classifier; it supports: grad_input, ig"):
        check_method(lstm, "cls", "lstm_classifier")
    with pytest.raises(UsageError, match="has neither attention weights nor a token embedding"):
        check_method(nn.Linear(2, 2), "cls", "mine")
