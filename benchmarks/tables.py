"""The table presets against scikit-learn on the same rows: `tables/diabetes` (regression, test R²) beside
LinearRegression and HistGradientBoostingRegressor, `tables/breast_cancer` (binary, test ROC AUC) beside
LogisticRegression; the presets' mean ± std over seeds.

    python -m benchmarks.tables --seeds 0 1 2

Each seed is a `trainlab.run` of the preset; scikit-learn's models train on the preset's training rows (its
training and validation splits together: they need no validation), standardised as the run's, and are scored on
its test rows. Figures go to benchmarks/results/tables.json.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

import numpy as np

from benchmarks.common import save, table

PRESETS = {"tables/diabetes": "test_r2", "tables/breast_cancer": "test_auc"}


def baselines(preset: str) -> dict[str, float]:
    """scikit-learn's models on the preset's rows: R² (regression) or ROC AUC (binary) on its test split."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.metrics import r2_score, roc_auc_score

    from trainlab.config import load_config
    from trainlab.data import DATASETS
    from trainlab.data.table_encoding import TablePreprocess

    config, _ = load_config(preset)
    dataset = DATASETS.build(config.data.name, **config.data.args)
    encoding = TablePreprocess.fit(dataset, dataset.train)
    x_train, x_test = (encoding.encode_frame(rows, preset).numpy() for rows in (dataset.train, dataset.test))
    y_train, y_test = (encoding.targets_of(rows, preset).numpy() for rows in (dataset.train, dataset.test))
    if config.task == "regression":
        y_train, y_test = y_train.ravel(), y_test.ravel()
        return {name: float(r2_score(y_test, model.fit(x_train, y_train).predict(x_test))) for name, model in
                (("LinearRegression", LinearRegression()), ("HistGradientBoostingRegressor", HistGradientBoostingRegressor(random_state=0)))}
    model = LogisticRegression(max_iter=5000).fit(x_train, y_train)
    return {"LogisticRegression": float(roc_auc_score(y_test, model.predict_proba(x_test)[:, 1]))}


def run_preset(preset: str, metric: str, seeds: list[int]) -> dict:
    import trainlab

    out = tempfile.mkdtemp()
    runs = [trainlab.run(preset, seed=seed, quiet=True, progress=False, output_dir=out).record for seed in seeds]
    values = [record[metric] for record in runs]
    return {"preset": preset, "metric": metric, "seeds": seeds, "values": values, "mean": statistics.mean(values),
            "std": statistics.pstdev(values), "train_seconds": [record["train_seconds"] for record in runs],
            "baselines": baselines(preset), "run_folders": out}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    results = [run_preset(preset, metric, args.seeds) for preset, metric in PRESETS.items()]
    rows = []
    for result in results:
        rows.append({"model": f"trainlab {result['preset']} ({len(result['seeds'])} seeds)", "metric": result["metric"],
                     "test": f"{result['mean']:.4f} ± {result['std']:.4f}"})  # fmt: skip
        rows += [{"model": f"scikit-learn {name}", "metric": result["metric"], "test": f"{value:.4f}"}
                 for name, value in result["baselines"].items()]  # fmt: skip
    print(table(rows))
    print(save("tables", {"results": results}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
