"""A tiny BERT built in the test (no download): a word-piece tokenizer over a few words and a 2-layer encoder."""

from __future__ import annotations

from pathlib import Path

import torch

from tests.text.tiny import FILLERS, KEYWORDS

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
# whole words, and pieces so that "unhappy" -> un ##happy and "zapping" -> za ##pping
WORDS = sorted({*FILLERS, *(w for words in KEYWORDS.values() for w in words)}) + ["un", "##happy", "za", "##pping", "!", ".", ","]


def write_tiny_bert(folder: Path, *, hidden: int = 16, layers: int = 2, heads: int = 2, seed: int = 0,
                    vocabulary: list[str] | None = None) -> Path:  # fmt: skip
    """A BERT model folder (config.json, model.safetensors, tokenizer files) with random weights; returns `folder`."""
    from transformers import BertConfig, BertModel, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    pieces = SPECIAL + (vocabulary or WORDS)
    tokenizer = BertTokenizer(vocab={piece: i for i, piece in enumerate(pieces)}, do_lower_case=True)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=2 * hidden, max_position_embeddings=128, pad_token_id=0)  # fmt: skip
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
