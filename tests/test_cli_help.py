"""What a newcomer meets first: the version, the help of every command, the first runs (issue 13)."""

import inspect
import os
import re
import subprocess
import sys
from importlib.metadata import version

import pytest

from tests.conftest import TINY
from tests.test_cli import assert_user_error
from trainlab.cli import app

# The commands whose help this file checks (eval and compare have their own).
COMMANDS = ["run", "sweep", "show-data", "summary", "list", "doctor"]
TYPE_TAG = re.compile(r"<(list|bool|int|float|str|path|file|text)\b[^>]*>", re.IGNORECASE)


def trainlab(*args):
    """The command in a real process, its help laid out for an 80-column terminal."""
    env = {k: v for k, v in os.environ.items() if k not in ("TERMINAL_WIDTH", "FORCE_COLOR")} | {"COLUMNS": "80"}
    return subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True, timeout=300, env=env)


def help_of(*command):
    """A command's --help, in this process (help needs no real process: no data, no training), 80 columns wide."""
    from typer.testing import CliRunner

    result = CliRunner(env={"COLUMNS": "80", "TERMINAL_WIDTH": None, "FORCE_COLOR": None}).invoke(
        app, [*command, "--help"], prog_name="trainlab"
    )
    assert result.exit_code == 0, result.output
    return result.stdout


def first_paragraph(name):
    command = next(c for c in app.registered_commands if (c.name or c.callback.__name__) == name)
    return inspect.getdoc(command.callback).split("\n\n")[0]


def test_version_names_trainlab_and_torch():
    result = trainlab("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"trainlab {version('trainlab')} (torch {version('torch')})"
    assert result.stdout.startswith("trainlab 0.1.0 ")


def test_bare_trainlab_shows_the_commands_one_line_each():
    result = trainlab()
    assert result.returncode == 2, result.stderr  # as `trainlab text` and click do for a missing command
    assert "Missing command" not in result.stdout + result.stderr
    assert "trainlab [OPTIONS] COMMAND [ARGS]..." in result.stdout and "--version" in result.stdout
    for name in COMMANDS:
        summary = first_paragraph(name)
        assert "\n" not in summary, f"{name}: the first paragraph of its docstring is its line in the list"
        assert any(re.match(rf"│ {re.escape(name)} +{re.escape(summary)} +│$", line) for line in result.stdout.splitlines()), (
            name, result.stdout
        )


@pytest.mark.parametrize("command", [[], *[[name] for name in COMMANDS]])
def test_help_shows_metavars_not_type_tags(command):
    text = help_of(*command)
    assert "Usage: trainlab" in text and not TYPE_TAG.search(text), text


@pytest.mark.parametrize("command", ["run", "sweep", "show-data", "summary", "doctor"])
def test_help_of_a_command_that_takes_a_config_shows_examples_and_where_the_keys_are(command):
    text = " ".join(help_of(command).split())  # the help wraps at 80 columns
    assert "Examples: trainlab " + command in text
    assert "README.md, section Configs" in text and "trainlab list models|presets|datasets" in text


def test_run_help_names_its_arguments_and_options_by_what_they_take():
    text = help_of("run")
    assert "trainlab run [OPTIONS] [CONFIG] [KEY=VALUE]..." in text
    assert re.search(r"--resume +RUN_FOLDER ", text) and re.search(r"--seeds +N ", text)
    assert "trainlab run workshop/task1 epochs=1" in text


def test_a_warmup_longer_than_a_one_epoch_run_is_shortened_with_a_note(tmp_path, isolated):
    (tmp_path / "preset.yaml").write_text("scheduler: {name: cosine, warmup_epochs: 1}\nepochs: 12\n")
    result = trainlab("run", str(tmp_path / "preset.yaml"), *TINY, "epochs=1")
    assert result.returncode == 0, result.stderr
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert notes == ["note: scheduler.warmup_epochs=1 (21 steps) is not shorter than the training (1 epoch = 21 steps): "
                     "warming up over 2 steps (10% of it) instead; set scheduler.warmup_steps to choose"]
    assert "Traceback" not in result.stderr and "warnings.warn" not in result.stderr
    assert len(list((isolated / "runs").glob("preset-*/report.html"))) == 1


def test_a_seed_beyond_64_bits_exits_2_naming_the_range():
    assert_user_error(trainlab("run", "seed=18446744073709551616"), 2, "field 'seed'", "got 18446744073709551616",
                      "-9223372036854775808..18446744073709551615")  # fmt: skip
    assert_user_error(trainlab("run", "seed=18446744073709551615", "--seeds", "2"), 2, "--seeds 2", "18446744073709551615")


def test_a_run_started_from_a_run_folders_config_keeps_its_name_and_its_data(tmp_path, isolated):
    from tests.test_cli import make_image_folder

    make_image_folder(tmp_path / "project" / "pets")
    (tmp_path / "project" / "pets.yaml").write_text("data: {name: image_folder, root: pets, val_size: 2}\n")
    assert trainlab("run", str(tmp_path / "project" / "pets.yaml"), *TINY, "epochs=1").returncode == 0
    (first,) = (isolated / "runs").iterdir()
    assert first.name.startswith("pets-")
    os.chdir(tmp_path)  # elsewhere: the saved data.root is absolute
    result = trainlab("run", str(first / "config.yaml"), f"output_dir={isolated / 'runs'}")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name.split("-")[0] for p in (isolated / "runs").iterdir()) == ["pets", "pets"]
