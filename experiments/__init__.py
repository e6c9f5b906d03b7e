"""Named experiments: each ``experiments/<name>/config.py`` defines ``get_config(**overrides)``.

The CLI name uses dashes (``bpr-mf``); the folder uses underscores (``bpr_mf``).
"""

import importlib
import pkgutil


def names() -> list[str]:
    """CLI names of every experiment folder that has a ``config.py``."""
    out = []
    for info in pkgutil.iter_modules(__path__):
        if info.ispkg:
            try:
                importlib.import_module(f"{__name__}.{info.name}.config")
            except ModuleNotFoundError:
                continue
            out.append(info.name.replace("_", "-"))
    return sorted(out)


def get_config(name: str, **overrides):
    """The ``ExperimentConfig`` of experiment ``name`` (``tiny=True`` for smoke tests)."""
    module = name.replace("-", "_")
    try:
        mod = importlib.import_module(f"{__name__}.{module}.config")
    except ModuleNotFoundError:
        raise ValueError(f"unknown experiment {name!r}; available: {', '.join(names())}.") from None
    return mod.get_config(**overrides)


def runner(name: str):
    """The experiment's own ``run(cfg, out_dir, *, resume, progress)`` if it defines one
    (e.g. sequential models with their own training loop), else None."""
    mod = importlib.import_module(f"{__name__}.{name.replace('-', '_')}.config")
    return getattr(mod, "run", None)
