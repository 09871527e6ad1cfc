"""trainlab: train, test, compare, tune and ship models from one config. From Python:

    import trainlab
    run = trainlab.run("workshop/task1", epochs=3, optimizer={"lr": 3e-4})
    run.metrics, run.test, run.predict(["cat.jpg"])
    run = trainlab.fit(MyNet(), data=(X, y), epochs=5, optimizer="adamw", lr=1e-3)
"""

API = ("run", "fit", "load_run", "compare", "Run")


def __getattr__(name: str):  # the Python API loads on first use: the command line does not need it
    if name in API:
        from trainlab import api

        return getattr(api, name)
    raise AttributeError(f"module 'trainlab' has no attribute {name!r}")
