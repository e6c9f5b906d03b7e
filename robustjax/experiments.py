"""Named experiments: ``experiments/<name>/config.py`` files, loaded by path.

Each config file defines ``get_config(*, tiny=False, **overrides)`` and returns either an
``ExperimentConfig`` (one training run) or a study config (``robustjax.studies``, several
runs). The CLI name uses dashes (``bpr-mf``); the folder uses underscores (``bpr_mf``).

The ``experiments/`` folder is not an installed package: it is found beside the
``robustjax`` package of the source checkout (the install is editable), or at
``$ROBUSTJAX_EXPERIMENTS`` when that is set.
"""

import dataclasses
import importlib.util
import os
import sys
from types import ModuleType

ENV_VAR = "ROBUSTJAX_EXPERIMENTS"


def experiments_dir() -> str:
    """The folder holding ``<name>/config.py``: ``$ROBUSTJAX_EXPERIMENTS`` if set, else
    ``experiments/`` in the source checkout that holds this package."""
    path = os.environ.get(ENV_VAR)
    source = f"${ENV_VAR}"
    if not path:
        checkout = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        path = os.path.join(checkout, "experiments")
        source = "the source checkout of robustjax"
    if not os.path.isdir(path):
        raise FileNotFoundError(
            f"experiments folder {path!r} (from {source}) does not exist; robustjax finds "
            f"named experiments in the source checkout it is installed from (pip install -e "
            f".), or set {ENV_VAR}=/path/to/experiments."
        )
    return path


def names() -> list[str]:
    """CLI names of every experiment folder that has a ``config.py``."""
    root = experiments_dir()
    return sorted(
        d.replace("_", "-")
        for d in os.listdir(root)
        if not d.startswith((".", "_")) and os.path.isfile(os.path.join(root, d, "config.py"))
    )


def load_module(name: str) -> ModuleType:
    """The ``config.py`` module of experiment ``name`` (loaded once per process)."""
    folder = name.replace("-", "_")
    path = os.path.join(experiments_dir(), folder, "config.py")
    if not os.path.isfile(path):
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(names())}.")
    module_name = f"_robustjax_experiment_{folder}"
    module = sys.modules.get(module_name)
    if module is not None and getattr(module, "__file__", None) == path:
        return module
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses defined in the file look it up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def get_config(name: str, **overrides):
    """The config of experiment ``name`` (``tiny=True`` for smoke tests)."""
    return load_module(name).get_config(**overrides)


def adversarial_variant(base, adv, *, name: str, epochs: int):
    """Config ``base`` (an ``ExperimentConfig``) trained for its own ``train.epochs`` as the
    clean warm start, then ``epochs`` more with the adversarial term of ``adv`` (the APR
    protocol), named ``name``. ``adv.warm_epochs`` is set to the warm start's length."""
    warm = base.train.epochs
    return dataclasses.replace(
        base,
        name=name,
        train=dataclasses.replace(base.train, epochs=warm + epochs),
        adv=dataclasses.replace(adv, warm_epochs=warm),
    )
