"""Named experiment configs: ``experiments/<name>/config.py``, loaded by path with
``robustjax.experiments`` (not an installed package).

This file remains only while ``sasrec_adv_ml1m/config.py`` imports
``experiments.sasrec_ml1m.config``.
"""
