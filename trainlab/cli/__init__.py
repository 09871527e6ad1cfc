"""The `trainlab` command: one thin verb per function (experiments.py, shipping.py) on the app of app.py. User
mistakes print one message, no traceback."""

from trainlab.cli import experiments, shipping  # noqa: F401  (register their commands, in the order of --help)
from trainlab.cli.app import app, main
from trainlab.cli_support import interrupts_as_errors

for _command in app.registered_commands:
    _command.callback = interrupts_as_errors(_command.callback)


__all__ = ["app", "main"]
