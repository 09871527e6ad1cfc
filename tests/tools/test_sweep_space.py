"""The sweep: section and its search space, checked against the experiment config before any trial."""

import optuna
import pytest

from trainlab.config import load_raw_config, validate_config
from trainlab.errors import ConfigError
from trainlab.tools.sweep.space import SearchSpace, with_values

BASE = """\
model: {name: mnist_mlp, hidden: [16]}
scheduler: {name: cosine, warmup_epochs: 1}
epochs: 2
"""


def space_of(tmp_path, sweep: str) -> SearchSpace:
    (tmp_path / "s.yaml").write_text(BASE + "sweep:\n" + sweep)
    raw, source, origin = load_raw_config(str(tmp_path / "s.yaml"))
    config = validate_config(raw, source, origin)
    return SearchSpace.check(config.sweep, {k: v for k, v in raw.items() if k != "sweep"}, config, source)


def test_ranges_are_integer_or_float_by_their_bounds_and_the_field(tmp_path):
    space = space_of(tmp_path, """\
  space:
    optimizer.lr: {low: 1.0e-4, high: 1.0e-1, log: true}
    data.batch_size: {low: 16, high: 64, step: 16}
    regularization.l2: {low: 0, high: 1}
    model.hidden: [[16], [32, 16]]
""")
    dims = space.dimensions
    assert isinstance(dims["optimizer.lr"].distribution(), optuna.distributions.FloatDistribution)
    assert dims["data.batch_size"].distribution() == optuna.distributions.IntDistribution(16, 64, step=16)
    assert not dims["regularization.l2"].integer, "l2 is a float field: integer bounds do not make it an integer"
    assert dims["model.hidden"].options == ["[16]", "[32, 16]"]  # Optuna stores scalars: a list choice is its YAML text
    assert space.decode({"model.hidden": "[32, 16]"}) == {"model.hidden": [32, 16]}
    assert dims["data.batch_size"].grid_values() == [16, 32, 48, 64]


def test_the_grid_is_every_combination_in_order(tmp_path):
    space = space_of(tmp_path, "  space: {optimizer.lr: [0.001, 0.01], scheduler.name: [linear, cosine, inverse_sqrt]}\n")
    grid = space.grid()
    assert len(grid) == 6 and grid[0] == {"optimizer.lr": 0.001, "scheduler.name": "linear"}
    assert len({tuple(p.values()) for p in grid}) == 6


def test_trial_configs_keep_only_what_the_user_wrote():
    raw = {"scheduler": {"name": "cosine", "warmup_epochs": 1}, "model": {"name": "mnist_mlp"}}
    changed = with_values(raw, {"scheduler.name": "inverse_sqrt", "data.batch_size": 32})
    assert changed["scheduler"] == {"name": "inverse_sqrt", "warmup_epochs": 1} and changed["data"] == {"batch_size": 32}
    assert raw["scheduler"]["name"] == "cosine", "the config as written is left as it was"


@pytest.mark.parametrize(("sweep", "fragments"), [
    ("  space: {scheduler.name: [cosine, cosin]}\n", ["line 5", "scheduler.name=cosin", "did you mean 'cosine'", "inverse_sqrt"]),
    ("  space: {optimizer.lr: {low: -1, high: 1}}\n", ["optimizer.lr=-1", "greater than 0"]),
    ("  space: {optimizer.lrr: [0.1]}\n", ["unknown field 'optimizer.lrr'", "did you mean 'lr'"]),
    ("  space: {}\n", ["sweep.space", "no field to search"]),
    ("  space: {optimizer.lr: []}\n", ["no choices"]),
    ("  space: {optimizer.lr: {low: 1, hi: 2}}\n", ["unknown key 'hi'", "did you mean 'high'"]),
    ("  space: {optimizer.lr: {low: 0, high: 1, log: true}}\n", ["log range needs low > 0"]),
    ("  method: tpr\n  space: {optimizer.lr: [0.1]}\n", ["sweep.method", "did you mean 'tpe'"]),
    ("  metric: val/loss\n  direction: maximize\n  space: {optimizer.lr: [0.1]}\n", ["val/loss is minimized"]),
])  # fmt: skip
def test_bad_sweep_sections_name_the_field_and_what_is_allowed(tmp_path, sweep, fragments):
    with pytest.raises(ConfigError) as error:
        space_of(tmp_path, sweep)
    for fragment in fragments:
        assert fragment in str(error.value)
