"""`trainlab sweep`: hyperparameter search over a config's `sweep:` section, on Optuna.

    schema.py    the `sweep:` section, checked whenever a config loads (kept free of heavy imports)
    space.py     the search space against the experiment config: checked choices, suggestions, the grid
    folder.py    the sweep folder: the config it was started with, trial configs, the workers' lock
    study.py     the Optuna study: storage, samplers, pruners, the trial loop, worker processes, resume
    bestball.py  best-ball: balls around the best settings every epoch, their lineage, the replay
    outputs.py   trials.csv, best.yaml and the pictures
"""
