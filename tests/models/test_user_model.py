"""A model from the user's own file (`model.name: my_nets.py:TinyNet`): built with its config arguments and the
data's shape, trained, loaded back from its run folder, and refused once its file changed or went away."""

import textwrap

import pytest
import torch

from tests.conftest import TINY
from tests.test_cli import assert_user_error, trainlab
from trainlab.config import load_config
from trainlab.engine.checkpoint import load_checkpoint
from trainlab.errors import ConfigError, UsageError
from trainlab.experiment import run_experiment
from trainlab.inference import Predictor
from trainlab.models import MODELS

NETS = '''
import torch
from torch import nn


class TinyNet(nn.Module):
    """A conv layer, a global average and a linear layer."""

    def __init__(self, in_channels: int, num_classes: int, width: int = 16):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        return self.head(self.body(x))


def lazy_mlp(num_classes: int, hidden: int = 32):
    return nn.Sequential(nn.Flatten(), nn.LazyLinear(hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


def three_outputs(image_size: tuple[int, int]):
    return nn.Sequential(nn.Flatten(), nn.Linear(image_size[0] * image_size[1], 3))
'''
SETTINGS = [*TINY[2:], "precision=fp32"]


@pytest.fixture
def nets(tmp_path):
    """my_nets.py in a project folder, with a config beside it that names it by a relative path."""
    project = tmp_path / "project"
    project.mkdir()
    (project / "my_nets.py").write_text(NETS)
    (project / "my.yaml").write_text("model: {name: my_nets.py:TinyNet, width: 12}\noptimizer: {lr: 0.01}\n")
    return project


def train(spec, *overrides):
    config, source = load_config(spec, [*SETTINGS, *overrides])
    return run_experiment(config, source).path


def test_a_config_names_a_file_beside_it_and_its_model_gets_the_data_shape_and_its_arguments(nets):
    config, _ = load_config(str(nets / "my.yaml"))
    assert config.model.name == f"{nets / 'my_nets.py'}:TinyNet"  # absolute: the run folder's config finds it anywhere
    assert config.model.args == {"width": 12}
    assert MODELS.injected(config.model.name) == ("in_channels", "num_classes")

    run = train(str(nets / "my.yaml"))

    model = Predictor.from_run(run).model
    assert model.body[0].in_channels == 1 and model.body[0].out_channels == 12 and model.head.out_features == 10
    assert (run / "model_file.py").read_text() == NETS  # the code the weights fit
    record = load_checkpoint(run / "checkpoints" / "best.pt")["model_file"]
    assert record["path"] == str(nets / "my_nets.py") and len(record["sha256"]) == 64


def test_a_run_whose_model_file_changed_or_went_away_is_refused_with_where_its_copy_is(nets):
    run = train(str(nets / "my.yaml"))
    Predictor.from_run(run)  # unchanged: loads

    (nets / "my_nets.py").write_text(NETS.replace("nn.ReLU()", "nn.GELU()"))
    with pytest.raises(UsageError, match=r"my_nets.py changed since .* was trained with it .*model_file.py"):
        Predictor.from_run(run)
    with pytest.raises(UsageError, match="changed since"):  # training on from it would mix old weights with new code
        run_experiment(*load_config(str(run), []), init_from=run / "checkpoints" / "last.pt")

    (nets / "my_nets.py").unlink()
    with pytest.raises(UsageError, match=r"my_nets.py, which is gone: put it back; the run's copy of it is .*model_file.py"):
        Predictor.from_run(run)


def test_the_cli_predicts_from_the_run_folder_and_refuses_a_changed_file(nets, tmp_path):
    run = train(str(nets / "my.yaml"), "output_dir=" + str(tmp_path / "runs"))
    image = tmp_path / "digit.png"
    from PIL import Image

    Image.fromarray((torch.rand(8, 8) * 255).to(torch.uint8).numpy()).save(image)
    predicted = trainlab("predict", str(run), str(image), "--top", "2")
    assert predicted.returncode == 0, predicted.stderr
    assert "digit.png" in predicted.stdout

    (nets / "my_nets.py").write_text(NETS + "\n# edited\n")
    assert_user_error(trainlab("eval", str(run)), 2, "my_nets.py changed since")


def test_lazy_layers_take_their_shapes_from_the_data_and_load_back(nets):
    run = train(None, f"model.name={nets / 'my_nets.py'}:lazy_mlp", "model.hidden=20")
    model = Predictor.from_run(run).model
    assert model[1].weight.shape == (20, 64)  # 8x8 digits


def test_a_model_whose_outputs_do_not_fit_the_classes_is_refused_before_training_naming_both_shapes(nets, tmp_path):
    with pytest.raises(ConfigError, match=r"outputs of shape \(2, 3\) .* needs \(2, 10\)"):
        train(None, f"model.name={nets / 'my_nets.py'}:three_outputs", f"output_dir={tmp_path / 'runs'}")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").rglob("best.pt"))


def test_mistakes_in_the_file_or_the_name_are_config_errors(nets):
    (nets / "broken.py").write_text("import torch\n\nclass Net(torch.nn.Module):\n    x = undefined_name\n")
    with pytest.raises(ConfigError, match=r"broken.py, line 4 does not import: NameError: name 'undefined_name'"):
        load_config(None, [f"model.name={nets / 'broken.py'}:Net"])
    with pytest.raises(ConfigError, match=r"defines no 'TinyNett' \(did you mean 'TinyNet'\?\)"):
        load_config(None, [f"model.name={nets / 'my_nets.py'}:TinyNett"])
    with pytest.raises(ConfigError, match=r"unknown field 'model.widht' \(did you mean 'width'\?\)"):
        load_config(None, [f"model.name={nets / 'my_nets.py'}:TinyNet", "model.widht=3"])
    with pytest.raises(ConfigError, match="model file not found"):
        load_config(None, ["model.name=nowhere.py:Net"])


def test_a_file_that_does_not_import_exits_2_with_its_error_and_no_traceback(nets):
    (nets / "broken.py").write_text(textwrap.dedent("""
        import torch
        raise RuntimeError("my model file is unfinished")
    """))
    assert_user_error(trainlab("run", f"model.name={nets / 'broken.py'}:Net"), 2, "does not import", "my model file is unfinished")


def test_a_text_model_of_the_user_s_is_given_the_vocabulary(nets, tmp_path):
    from tests.text.tiny import write_emotion

    (nets / "text_nets.py").write_text(textwrap.dedent('''
        from torch import nn

        class MeanOfWords(nn.Module):
            def __init__(self, vocabulary, num_classes: int, dim: int = 16):
                super().__init__()
                self.embedding = nn.EmbeddingBag(len(vocabulary), dim, padding_idx=0)
                self.head = nn.Linear(dim, num_classes)

            def forward(self, ids):
                return self.head(self.embedding(ids))
    '''))
    root = write_emotion(tmp_path / "emotion", (20, 4, 4))
    run = train(None, f"model.name={nets / 'text_nets.py'}:MeanOfWords", "model.dim=8", "data.name=emotion",
                f"data.root={root}", "data.batch_size=16", "epochs=3", "optimizer.lr=0.05")  # fmt: skip
    predictor = Predictor.from_run(run)
    assert predictor.model.embedding.num_embeddings == len(predictor.preprocess.vocabulary)
    assert predictor.model.head.out_features == 6
    (answer,) = predictor.top_classes(["i feel so happy today"], 1)
    assert answer[0][0] in predictor.classes
