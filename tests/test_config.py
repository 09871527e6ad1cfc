from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import yaml

from trainlab.build import eval_batch_size
from trainlab.config import SEED_MAX, SEED_MIN, ExperimentConfig, apply_overrides, list_presets, load_config, parse_override
from trainlab.errors import ConfigError


def write(path, text):
    path.write_text(text)
    return str(path)


def test_no_argument_is_the_embedded_default_on_digits():
    config, source = load_config(None)
    assert config.data.name == "digits"
    assert config.model.name == "workshop_cnn"
    assert source.run_name == "default"


def test_builder_defaults_are_filled_in_so_the_saved_config_is_complete():
    config, _ = load_config(None)
    assert config.model.args == {"channels": [32, 32, 64, 64], "hidden": [256, 128], "fc_activation": "relu",
                                 "extra_conv": False, "fc_batchnorm": False, "dropout": 0.0}
    assert config.optimizer.args["lr"] == 0.001


def test_overrides_are_parsed_to_the_fields_type(tmp_path):
    spec = write(tmp_path / "my.yaml", "epochs: 3\noptimizer:\n  name: sgd\n")
    config, _ = load_config(spec, ["optimizer.lr=3e-4", "epochs=5", "seed=1", "optimizer.nesterov=true",
                                   "optimizer.momentum=0.9", "model.channels=[8,8,16,16]", "name=42"])
    assert config.optimizer.args["lr"] == pytest.approx(3e-4) and isinstance(config.optimizer.args["lr"], float)
    assert config.epochs == 5 and config.seed == 1
    assert config.optimizer.args["nesterov"] is True
    assert config.model.args["channels"] == [8, 8, 16, 16]
    assert config.name == "42"


def test_preset_is_addressable_by_name():
    assert "workshop/task1" in list_presets()
    config, source = load_config("workshop/task1", ["precision=fp32", "model.name=workshop_cnn"])
    assert config.data.name == "cifar10" and config.precision == "fp32"
    assert source.run_name == "task1"


def test_saved_config_reloads_to_the_same_experiment(tmp_path):
    config, _ = load_config("workshop/task1", ["optimizer.lr=0.01", "seed=7"])
    saved = write(tmp_path / "config.yaml", config.to_yaml())
    again, _ = load_config(saved)
    assert again == config


def test_unknown_key_names_file_line_and_suggests(tmp_path):
    spec = write(tmp_path / "bad.yaml", "epochs: 2\noptimizer:\n  name: adam\n  lrr: 0.1\n")
    with pytest.raises(ConfigError) as e:
        load_config(spec)
    message = str(e.value)
    assert "bad.yaml, line 4" in message and "optimizer.lrr" in message and "did you mean 'lr'" in message


def test_unknown_top_level_key_is_refused(tmp_path):
    spec = write(tmp_path / "bad.yaml", "epoch: 2\n")
    with pytest.raises(ConfigError, match=r"line 1: unknown field 'epoch' \(did you mean 'epochs'\?\)"):
        load_config(spec)


def test_wrong_type_names_the_field_and_the_value(tmp_path):
    spec = write(tmp_path / "bad.yaml", "seed: 0\nepochs: many\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line 2: field 'epochs'.*'many'"):
        load_config(spec)


def test_wrong_type_from_an_override_names_the_override():
    with pytest.raises(ConfigError, match=r"override 'optimizer.lr=fast': field 'optimizer.lr'"):
        load_config(None, ["optimizer.lr=fast"])


def test_out_of_range_value_is_refused():
    with pytest.raises(ConfigError, match="epochs"):
        load_config(None, ["epochs=0"])


def test_unknown_model_suggests_the_close_name():
    with pytest.raises(ConfigError, match=r"unknown model 'workshop_cn' \(did you mean 'workshop_cnn'\?\)"):
        load_config(None, ["model.name=workshop_cn"])


def test_unknown_optimizer_suggests_the_close_name():
    with pytest.raises(ConfigError, match=r"did you mean 'rmsprop'"):
        load_config(None, ["optimizer.name=rmsprp"])


def test_injected_arguments_cannot_be_set_by_the_config():
    with pytest.raises(ConfigError, match="num_classes"):
        load_config(None, ["model.num_classes=3"])


def test_unknown_preset_and_missing_file():
    with pytest.raises(ConfigError, match="did you mean 'workshop/task1'"):
        load_config("workshop/tsak1")
    with pytest.raises(ConfigError, match="config file not found: nope.yaml"):
        load_config("nope.yaml")


def test_invalid_yaml_names_the_line(tmp_path):
    spec = write(tmp_path / "bad.yaml", "epochs: 2\nmodel: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml, line \d+: not valid YAML"):
        load_config(spec)


def test_malformed_override_says_what_is_expected():
    with pytest.raises(ConfigError, match="expected key=value"):
        parse_override("epochs")


def test_override_into_a_scalar_is_refused():
    with pytest.raises(ConfigError, match="'epochs' is not a section"):
        apply_overrides({"epochs": 3}, ["epochs.x=1"])


def test_schema_defaults_dump_to_plain_yaml():
    assert yaml.safe_load(ExperimentConfig().to_yaml())["data"]["name"] == "digits"


@pytest.mark.parametrize("preset", list(list_presets()))
def test_every_preset_is_a_valid_config(preset):
    config, _ = load_config(preset)
    assert config.epochs >= 1


# ---------------------------------------------------------------------------------------- keys written twice


@pytest.mark.parametrize("text, key, lines", [
    ("epochs: 1\noptimizer:\n  name: sgd\nseed: 3\noptimizer:\n  name: adam\n", "optimizer", (2, 5)),
    ("optimizer:\n  name: sgd\n  lr: 0.1\n  momentum: 0.9\n  lr: 0.2\n", "optimizer.lr", (3, 5)),
    ("model: {name: workshop_cnn, dropout: 0.1, dropout: 0.2}\n", "model.dropout", (1, 1)),
    ("sweep:\n  space:\n    optimizer.lr: [0.1, 0.01]\n    optimizer.lr: [0.5]\n", "sweep.space.optimizer.lr", (3, 4)),
])  # fmt: skip
def test_a_key_written_twice_names_the_file_the_key_and_both_lines(tmp_path, text, key, lines):
    spec = write(tmp_path / "twice.yaml", text)
    with pytest.raises(ConfigError) as e:
        load_config(spec)
    assert f"twice.yaml: key '{key}' is written twice, on lines {lines[0]} and {lines[1]}" in str(e.value)


def test_a_yaml_merge_key_may_repeat_what_it_merges(tmp_path):
    text = "optimizer:\n  <<: {name: sgd, lr: 0.1}\n  lr: 0.2\n"
    config, _ = load_config(write(tmp_path / "merge.yaml", text))
    assert config.optimizer.name == "sgd" and config.optimizer.args["lr"] == 0.2


def test_a_run_folder_config_is_checked_for_keys_written_twice_too(tmp_path):
    folder = tmp_path / "runs" / "task1-20261123-101500"
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("seed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=r"config.yaml: key 'seed' is written twice, on lines 1 and 2"):
        load_config(str(folder))


# ---------------------------------------------------------------------------------------- seeds


@pytest.mark.parametrize("override", ["seed=18446744073709551616", "seed=-9223372036854775809",
                                      "data.split_seed=18446744073709551616", "data.split_seed=-9223372036854775809"])
def test_a_seed_outside_64_bits_names_the_field_the_value_and_the_range(override):
    field, value = override.split("=")
    with pytest.raises(ConfigError) as e:
        load_config(None, [override])
    message = str(e.value)
    assert f"override '{override}': field '{field}'" in message and f"got {value}" in message
    assert str(SEED_MIN) in message and str(SEED_MAX) in message


def test_the_64_bit_seed_range_and_negative_seeds_are_accepted():
    for seed in (SEED_MIN, -1, SEED_MAX):
        config, _ = load_config(None, [f"seed={seed}", f"data.split_seed={seed}"])
        assert config.seed == seed and config.data.split_seed == seed
    torch.manual_seed(SEED_MAX)  # the range is what torch takes
    torch.manual_seed(SEED_MIN)


# ---------------------------------------------------------------------------------------- warmup


def test_a_warmup_in_epochs_and_in_steps_at_once_is_refused_naming_both(tmp_path):
    spec = write(tmp_path / "warm.yaml", "scheduler:\n  name: cosine\n  warmup_epochs: 1\n  warmup_steps: 10\n")
    with pytest.raises(ConfigError) as e:
        load_config(spec)
    message = str(e.value)
    assert "warm.yaml, line 4" in message
    assert "scheduler.warmup_epochs=1 and scheduler.warmup_steps=10 both set the warmup; set one of them to 0" in message
    config, _ = load_config(spec, ["scheduler.warmup_steps=0"])
    assert config.scheduler.args["warmup_epochs"] == 1


# ---------------------------------------------------------------------------------------- run names


@pytest.mark.parametrize("folder_name", ["task1-20261123-101500", "task1-20261123-101500-2", "my-run-20261123-101500"])
def test_a_run_folder_and_its_config_yaml_keep_the_runs_name(tmp_path, folder_name):
    config, _ = load_config("workshop/task1")
    folder = tmp_path / "runs" / folder_name
    folder.mkdir(parents=True)
    write(folder / "config.yaml", config.to_yaml())
    expected = folder_name.split("-2026")[0]
    assert load_config(str(folder))[1].run_name == expected
    assert load_config(str(folder / "config.yaml"))[1].run_name == expected


def test_a_run_named_in_its_config_keeps_that_name_when_run_again(tmp_path):
    config, _ = load_config(None, ["name=baseline"])
    folder = tmp_path / "runs" / "baseline-20261123-101500"
    folder.mkdir(parents=True)
    again, source = load_config(write(folder / "config.yaml", config.to_yaml()))
    assert again.name == "baseline" and source.run_name == "baseline"


def test_a_config_yaml_outside_a_run_folder_is_named_by_its_file():
    assert load_config(write(Path("config.yaml"), "epochs: 1\n"))[1].run_name == "config"


# ---------------------------------------------------------------------------------------- data.root


IMAGES = ["data.name=image_folder"]


def test_a_relative_data_root_in_a_file_is_resolved_against_the_files_folder(tmp_path):
    (tmp_path / "project" / "pets").mkdir(parents=True)
    spec = write(tmp_path / "project" / "pets.yaml", "data: {name: image_folder, root: pets}\n")
    config, _ = load_config(spec)
    assert config.data.root == str(tmp_path / "project" / "pets")


def test_a_relative_data_root_override_is_resolved_against_the_current_folder(tmp_path, isolated):
    spec = write(tmp_path / "pets.yaml", "data: {name: image_folder, root: elsewhere}\n")
    config, _ = load_config(spec, ["data.root=../mine/./pets"])
    assert config.data.root == str(tmp_path / "mine" / "pets")


def test_data_root_expands_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config, _ = load_config(None, [*IMAGES, "data.root=~/pets"])
    assert config.data.root == str(tmp_path / "home" / "pets")


def test_a_relative_data_root_found_only_under_trainlab_data_is_taken_from_there(tmp_path, isolated):
    (tmp_path / "data" / "cifar10-jpeg").mkdir(parents=True)  # $TRAINLAB_DATA, as conftest sets it
    config, _ = load_config(None, [*IMAGES, "data.root=cifar10-jpeg"])
    assert config.data.root == str(tmp_path / "data" / "cifar10-jpeg")
    (isolated / "cifar10-jpeg").mkdir()  # the current folder comes first
    config, _ = load_config(None, [*IMAGES, "data.root=cifar10-jpeg"])
    assert config.data.root == str(isolated / "cifar10-jpeg")


def test_the_saved_config_reads_the_same_data_root_from_another_folder(tmp_path, monkeypatch):
    (tmp_path / "project" / "pets").mkdir(parents=True)
    config, _ = load_config(write(tmp_path / "project" / "pets.yaml", "data: {name: image_folder, root: pets}\n"))
    saved = write(tmp_path / "config.yaml", config.to_yaml())
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    again, _ = load_config(saved)
    assert again.data.root == str(tmp_path / "project" / "pets") and again == config


@pytest.mark.parametrize(("model", "data", "expected"), [
    ("{name: workshop_cnn}", "{name: cifar10}", 512),                   # the model sees the 32x32 images
    ("{name: vgg16, input_size: 64}", "{name: cifar10}", 128),          # the pixels of 512 images of 32x32
    ("{name: efficientnet_lite0, input_size: 128}", "{name: cifar10}", 32),
    ("{name: efficientnet_lite0, input_size: 128}", "{name: cifar10, eval_batch_size: 100}", 100),  # a set size is kept
])
def test_the_default_evaluation_batch_holds_as_many_pixels_as_512_images_of_32x32(tmp_path, model, data, expected):
    path = tmp_path / "config.yaml"
    path.write_text(f"data: {data}\nmodel: {model}\n")
    config, _ = load_config(str(path))
    assert eval_batch_size(config, SimpleNamespace(image_shape=(3, 32, 32))) == expected


def test_the_default_evaluation_batch_follows_the_datasets_image_size(tmp_path):
    config, _ = load_config("workshop/task1")
    assert eval_batch_size(config, SimpleNamespace(image_shape=(3, 64, 64))) == 128  # an image folder at 64x64
    assert eval_batch_size(config, SimpleNamespace(image_shape=(1, 8, 8))) == 512  # small images: at most 512
    assert eval_batch_size(config, SimpleNamespace()) == 512  # texts and tables have no pixels
    path = tmp_path / "config.yaml"
    path.write_text("data: {name: cifar10}\nmodel: {name: efficientnet_lite0, input_size: 128}\n")
    resized, _ = load_config(str(path))
    assert eval_batch_size(resized, SimpleNamespace()) == 512  # an input_size is pixels only for image data
