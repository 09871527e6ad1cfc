"""The two kinds of error a user can meet, each with its exit code.

The CLI prints their message (no traceback) and exits with `exit_code`.
"""


class TrainlabError(Exception):
    """Something went wrong while running: bad file contents, a corrupt checkpoint, a NaN loss."""

    exit_code = 1


class UsageError(TrainlabError):
    """The user asked for something that cannot be: an unknown config key or name, a missing path."""

    exit_code = 2


class ConfigError(UsageError):
    """A config file or override is invalid; the message names the file, line and field."""


class DataError(TrainlabError):
    """A dataset file is missing, unreadable or not what was expected; the message names the file."""


class ConfigNote(UserWarning):
    """A config value that trainlab adjusted to fit the run, with what it used instead; the CLI prints it as a note."""


class DataWarning(UserWarning):
    """Something about the data that the user should know but that does not stop a run: a cache
    that cannot be written, a class folder left out. Python shows each message once per process."""
