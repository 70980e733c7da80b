"""pytest plugin (loaded through ``-p course_lib.pytest_plugin`` in pyproject.toml).

Tests and notebooks checked by nbval run in the ``smoke`` preset unless ``COURSE_PRESET`` is set,
so ``pytest`` stays fast on a laptop and in CI; the kernel nbval starts inherits the variable.
"""
import os


def pytest_configure(config):
    os.environ.setdefault("COURSE_PRESET", "smoke")
    os.environ.setdefault("MPLBACKEND", "Agg")
