"""A `Registry` maps the names a config may use (`model.name: workshop_cnn`) to builders.

Builders take plain keyword arguments with type annotations; the registry turns
those annotations into a pydantic schema, so a config section such as
`{name: adam, lr: 3e-4}` is validated (unknown keys refused, values parsed to the
annotated type) before anything is built.
"""

from __future__ import annotations

import difflib
import os
import fnmatch
import inspect
from collections.abc import Callable, Iterable
from typing import Any

import pydantic

from trainlab.errors import ConfigError


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """' (did you mean 'x'?)' for the closest choice, or '' when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=5, cutoff=0.6)
    if not close:
        return ""

    def likeness(choice: str) -> tuple[float, int]:  # equally close: the one that starts as the word does
        return difflib.SequenceMatcher(None, word, choice).ratio(), len(os.path.commonprefix([word, choice]))

    return f" (did you mean '{max(close, key=likeness)}'?)"


def configurable_arguments(builder: Callable[..., Any], injected: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
    """A builder's keyword arguments, minus those trainlab supplies itself."""
    signature = inspect.signature(builder, eval_str=True)
    return {
        p.name: p
        for p in signature.parameters.values()
        if p.name not in injected and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)
    }


def arguments_schema(builder: Callable[..., Any], injected: tuple[str, ...] = ()) -> type[pydantic.BaseModel]:
    """A pydantic model of a builder's configurable arguments, typed by their annotations, extra keys forbidden."""
    fields: dict[str, Any] = {}
    for arg in configurable_arguments(builder, injected).values():
        annotation = Any if arg.annotation is inspect.Parameter.empty else arg.annotation
        default = ... if arg.default is inspect.Parameter.empty else arg.default
        fields[arg.name] = (annotation, default)
    config = pydantic.ConfigDict(extra="forbid", coerce_numbers_to_str=True, arbitrary_types_allowed=True)
    return pydantic.create_model(f"{builder.__name__}_arguments", __config__=config, **fields)


class Registry:
    """Named builders of one kind of thing (models, datasets, optimizers, ...)."""

    def __init__(self, kind: str):
        self.kind = kind  # plural noun used in messages: "models"
        self._builders: dict[str, Callable[..., Any]] = {}
        self._injected: dict[str, tuple[str, ...]] = {}

    def register(self, name: str | None = None, *, injected: tuple[str, ...] = ()):
        """Decorator: register a builder under `name` (default: its function name).

        `injected` names the arguments that trainlab supplies itself (for example
        `num_classes` or `params`); a config may not set them.
        """

        def decorator(builder: Callable[..., Any]) -> Callable[..., Any]:
            key = name or builder.__name__
            if key in self._builders:
                raise ValueError(f"{self.kind}: '{key}' is registered twice")
            self._builders[key] = builder
            self._injected[key] = injected
            return builder

        return decorator

    def __contains__(self, name: str) -> bool:
        return name in self._builders

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching a glob pattern, sorted."""
        return sorted(n for n in self._builders if fnmatch.fnmatch(n, pattern))

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._builders:
            known = ", ".join(self.names())
            raise ConfigError(
                f"unknown {self.kind[:-1]} '{name}'{did_you_mean(name, self._builders)}; known {self.kind}: {known}"
            )
        return self._builders[name]

    def describe(self, name: str) -> str:
        """First line of the builder's docstring."""
        doc = inspect.getdoc(self.get(name)) or ""
        return doc.splitlines()[0] if doc else ""

    def arguments(self, name: str) -> dict[str, inspect.Parameter]:
        """The arguments a config may set for `name`: the builder's keyword arguments minus injected ones."""
        return configurable_arguments(self.get(name), self.injected(name))

    def injected(self, name: str) -> tuple[str, ...]:
        """The arguments of `name` that trainlab supplies (the data's shape, the parameters)."""
        self.get(name)
        return self._injected[name]

    def schema(self, name: str) -> type[pydantic.BaseModel]:
        """A pydantic model of the arguments of `name` (extra keys forbidden)."""
        return arguments_schema(self.get(name), self.injected(name))

    def validate(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Check `arguments` against the builder of `name`; returns them parsed, defaults filled in.

        Raises pydantic.ValidationError (the config loader turns it into a ConfigError
        naming the file and field).
        """
        self.get(name)
        injected = set(arguments) & set(self.injected(name))
        if injected:
            raise ConfigError(f"{self.kind[:-1]} '{name}': '{sorted(injected)[0]}' is set by trainlab, not by the config")
        return self.schema(name)(**arguments).model_dump()

    def build(self, name: str, /, *args: Any, **kwargs: Any) -> Any:
        return self.get(name)(*args, **kwargs)
