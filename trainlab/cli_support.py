"""What the `trainlab` command does around its verbs: --help without typer's type tags, notes printed
as one line, Ctrl-C and signals reported as one line instead of a silent exit."""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.text import Text
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from trainlab.utils.ranks import env_rank
from trainlab.errors import ConfigNote, DataWarning
from trainlab.utils.signals import Interrupted


class _Argument(TyperArgument):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None  # the metavar (CONFIG, KEY=VALUE) says what it takes; typer's tag would add <list[str]>


class _Option(TyperOption):
    def display_type_rich(self, ctx: Any) -> str | None:
        return None if self.is_flag else super().display_type_rich(ctx)  # no <bool> beside --help


def _untagged(param: Any) -> Any:
    """`param` shown in --help by its metavar alone, without typer's type tag."""
    if type(param) is TyperArgument:
        param.__class__ = _Argument
    elif type(param) is TyperOption:
        param.__class__ = _Option
    return param


class _Untagged:
    """--help that shows each value by its metavar (CONFIG, N, RUN_FOLDER), not by a type tag."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.params = [_untagged(p) for p in self.params]

    def get_help_option(self, ctx: Any) -> Any:
        return _untagged(super().get_help_option(ctx))


class Command(_Untagged, TyperCommand):
    """A trainlab command."""


class Group(_Untagged, TyperGroup):
    """The `trainlab` group: its own --version and --help shown as a command's."""


@contextlib.contextmanager
def notes_as_lines(errors: Console) -> Iterator[None]:
    """Within a command: a ConfigNote (a setting that trainlab adjusted to fit the run) printed as one line,
    `note: ...`, a DataWarning (a cache that cannot be written, a class folder left out) as `warning: ...`;
    other warnings as Python shows them."""
    with warnings.catch_warnings():  # restores the display when the command ends
        python_showwarning = warnings.showwarning

        def show(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> None:
            label = "note: " if issubclass(category, ConfigNote) else "warning: " if issubclass(category, DataWarning) else None
            if label:
                errors.print(Text.assemble((label, "bold yellow"), str(message)), highlight=False, soft_wrap=True)
            else:
                python_showwarning(message, category, *args, **kwargs)

        warnings.showwarning = show
        if env_rank() > 0:
            warnings.simplefilter("ignore")  # a data-parallel run's notes are told by its process 0
        yield


def interrupts_as_errors(command: Callable) -> Callable:
    """Typer turns Ctrl-C into a silent exit 130: say that the command was interrupted (or by which signal)."""
    @functools.wraps(command)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except KeyboardInterrupt as e:
            raise Interrupted(e) from None

    return guarded
