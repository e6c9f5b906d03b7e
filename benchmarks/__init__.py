"""Benchmarks: ``python -m benchmarks.NAME`` from the checkout, or ``robustjax bench NAME``."""
