"""The Python API in a real Jupyter kernel (nbclient): the README's worked example runs cell by cell, the progress bar
is a live widget, and a Run, its metrics and the compare table show themselves as HTML."""

import json

import nbformat
import pytest
from nbclient import NotebookClient

CELLS = [
    "import numpy as np, torch, trainlab\nfrom torch import nn",
    'run = trainlab.run(epochs=2, model={"channels": [4, 4, 8, 8], "hidden": [16, 16]}, threads=1)',
    "run",
    "run.metrics",
    "class DigitNet(nn.Module):\n"
    "    def __init__(self):\n"
    "        super().__init__()\n"
    "        self.layers = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))\n"
    "    def forward(self, x):\n"
    "        return self.layers(x)\n"
    "from sklearn.datasets import load_digits\n"
    "digits = load_digits()\n"
    "fitted = trainlab.fit(DigitNet(), data=(digits.images / 16, digits.target), epochs=2, lr=0.01, threads=1)",
    "trainlab.compare([run, fitted], sort='test_acc')",
]


def outputs_of(cell) -> dict[str, str]:
    """Every output of a cell by MIME type (stream text under 'stream'), joined."""
    found: dict[str, str] = {}
    for output in cell.outputs:
        if output.output_type == "stream":
            found["stream"] = found.get("stream", "") + output.text
        for mime, data in output.get("data", {}).items():
            found[mime] = found.get(mime, "") + (data if isinstance(data, str) else json.dumps(data))
        if output.output_type == "error":
            pytest.fail(f"cell failed: {output.ename}: {output.evalue}")
    return found


def test_the_python_api_in_a_jupyter_kernel_shows_live_bars_and_html(tmp_path):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in CELLS])
    NotebookClient(notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    training, shown, metrics, fitted, compared = (outputs_of(cell) for cell in notebook.cells[1:])

    assert "application/vnd.jupyter.widget-view+json" in training  # rich's live bar, as an ipywidgets Output
    assert "epoch   2/2" in json.dumps(training) and "test accuracy" in json.dumps(training)
    assert "test accuracy" in shown["text/html"] and shown["text/html"].count("data:image/png;base64,") == 2
    assert "train_loss" in metrics["text/html"] and "val_acc" in metrics["text/html"]
    assert "python:DigitNet" in json.dumps(fitted)
    assert "test_acc (%)" in compared["text/html"] and "model.name" in compared["text/html"]
