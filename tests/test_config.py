import pytest
import yaml

from trainlab.config import ExperimentConfig, apply_overrides, list_presets, load_config, parse_override
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
