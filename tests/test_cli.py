"""The command line as a user meets it: real processes, exit codes, messages, no tracebacks."""

import subprocess
import sys

import pytest
from PIL import Image

from tests.conftest import TINY


def trainlab(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "trainlab", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


def assert_user_error(result, code, *fragments):
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def make_image_folder(root, bad=None):
    for split in ("train", "test"):
        for label in ("cat", "dog"):
            folder = root / split / label
            folder.mkdir(parents=True)
            for i in range(6):
                Image.new("RGB", (8, 8), (40 * i, 100 if label == "cat" else 200, 0)).save(folder / f"{i}.png")
    if bad:
        (root / "train" / "cat" / bad[0]).write_bytes(bad[1])
    return root


def test_run_trains_and_reports(isolated):
    result = trainlab("run", *TINY, "epochs=1")
    assert result.returncode == 0, result.stderr
    assert "test accuracy" in result.stdout
    assert len(list((isolated / "runs").glob("default-*/report.html"))) == 1


def test_unknown_config_key_exits_2_naming_the_field(tmp_path):
    (tmp_path / "my.yaml").write_text("epochs: 1\noptimizer:\n  lrr: 0.1\n")
    assert_user_error(trainlab("run", str(tmp_path / "my.yaml")), 2, "my.yaml, line 3", "optimizer.lrr", "did you mean 'lr'")


def test_wrong_type_exits_2():
    assert_user_error(trainlab("run", "epochs=two"), 2, "override 'epochs=two'", "field 'epochs'")


def test_unknown_model_exits_2_with_a_suggestion():
    assert_user_error(trainlab("run", "model.name=workshop-cnn"), 2, "unknown model 'workshop-cnn'", "did you mean 'workshop_cnn'")


def test_missing_data_folder_exits_2_naming_it():
    assert_user_error(trainlab("run", "data.name=image_folder", "data.root=/no/such/folder"), 2, "/no/such/folder")


def test_missing_cifar10_offline_says_where_to_put_it(monkeypatch):
    result = trainlab("run", "workshop/task1", "data.root=/no/such/cifar")
    assert_user_error(result, 2, "/no/such/cifar")


@pytest.mark.parametrize("bad", [("notes.txt", b"hello"), ("broken.png", b"\x89PNG not really")])
def test_bad_file_in_an_image_folder_exits_1_naming_it(tmp_path, isolated, bad):
    root = make_image_folder(tmp_path / "pets", bad)
    result = trainlab("run", "data.name=image_folder", f"data.root={root}", *TINY)
    assert_user_error(result, 1, bad[0])
    assert not (isolated / "runs").exists(), "a run that cannot read its data leaves no run folder"


def test_image_folder_dataset_trains(tmp_path):
    root = make_image_folder(tmp_path / "pets")
    result = trainlab("run", "data.name=image_folder", f"data.root={root}", "data.val_size=2", *TINY, "epochs=1")
    assert result.returncode == 0, result.stderr


def test_corrupt_checkpoint_exits_1_naming_the_file(isolated):
    assert trainlab("run", *TINY, "epochs=1").returncode == 0
    folder = next((isolated / "runs").iterdir())
    best = folder / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:1000])
    assert_user_error(trainlab("eval", str(folder)), 1, "best.pt", "corrupt")
    assert_user_error(trainlab("run", "--resume", str(folder / "nope")), 2, "not a run folder")


def test_list_shows_what_a_config_may_name():
    result = trainlab("list", "models")
    assert result.returncode == 0 and "workshop_cnn" in result.stdout
    assert "workshop/task1" in trainlab("list", "presets").stdout
    assert "cosine" in trainlab("list", "schedulers").stdout
    assert_user_error(trainlab("list", "model"), 2, "did you mean 'models'")


def test_show_data_draws_the_augmented_training_samples(isolated):
    result = trainlab("show-data", "augment.flip_p=1", "-o", "grid.png", "--count", "16")
    assert result.returncode == 0, result.stderr
    assert Image.open(isolated / "grid.png").size[0] > 200


def test_seeds_run_several_and_compare_them(isolated):
    result = trainlab("run", *TINY, "epochs=1", "--seeds", "2")
    assert result.returncode == 0, result.stderr
    assert "n=2 seeds" in result.stdout and "±" in result.stdout
    compared = trainlab("compare", "runs", "--format", "markdown", "--plot", "curves.png")
    assert compared.returncode == 0, compared.stderr
    assert compared.stdout.count("| default-") == 2 and (isolated / "curves.png").is_file()
    assert_user_error(trainlab("compare", "runs", "--sort", "accuracy"), 2, "accuracy")


def test_bad_layer_list_exits_2_naming_the_layer_and_shapes():
    result = trainlab("run", "model.name=sequential", "model.layers=[conv 8 3, relu, linear 16]")
    assert_user_error(result, 2, "layer 3", "linear 16")
