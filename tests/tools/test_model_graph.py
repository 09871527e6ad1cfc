"""trainlab summary --graph: the Graphviz source and its drawing."""

import shutil

import pytest

from tests.tools.test_summary import TwoTowers
from trainlab.errors import UsageError
from trainlab.models import MODELS
from trainlab.tools.model_graph import to_dot, write_graph
from trainlab.evaluation.model_summary import summarize


def test_dot_source_has_a_box_per_layer_and_an_arrow_along_each_connection():
    summary = summarize(TwoTowers(), (16,), (32,))
    dot = to_dot(summary)
    node = {row.name: f"n{row.call.index}" for row in summary.rows}
    assert f'{node["dense_2"]} [label="dense_2 (Linear)\\n(None, 4)\\n68 params"];' in dot
    assert f'{node["input_a"]} [label="input_a\\n(None, 16)", shape=oval' in dot
    edges = {line.strip().rstrip(";") for line in dot.splitlines() if "->" in line}
    assert edges == {f"{node[a]} -> {node[b]}" for a, b in
                     [("input_a", "dense"), ("input_b", "dense_1"), ("dense", "dense_2"), ("dense_1", "dense_2")]}
    nested = to_dot(summarize(MODELS.build("preact_resnet", in_channels=1, num_classes=2, image_size=(8, 8), widths=[4]), (1, 8, 8)))
    assert 'label="2 (PreActBlock)"; style="rounded,dashed"' in nested


def test_without_graphviz_the_dot_source_is_written_and_the_message_names_the_package(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    message = write_graph(summarize(TwoTowers(), (16,), (32,)), tmp_path / "model.svg")
    assert (tmp_path / "model.dot").read_text().startswith("digraph model {")
    assert not (tmp_path / "model.svg").exists()
    assert "not installed" in message and "graphviz" in message and "apt-get install graphviz" in message
    with pytest.raises(UsageError, match="expected a file ending in .svg"):
        write_graph(summarize(TwoTowers(), (16,), (32,)), tmp_path / "model.jpg")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_draws_the_graph_as_svg(tmp_path):
    message = write_graph(summarize(TwoTowers(), (16,), (32,)), tmp_path / "model.svg")
    svg = (tmp_path / "model.svg").read_text()
    assert "<svg" in svg and "dense_2 (Linear)" in svg and "(None, 4)" in svg
    assert message == f"graph: {tmp_path / 'model.svg'} (source: {tmp_path / 'model.dot'})"
