"""pytest plugin (loaded through ``-p course_lib.workshop.pytest_plugin`` in pyproject.toml).

Tests and notebooks checked by nbval run in the ``smoke`` preset unless ``COURSE_PRESET`` is set,
so ``pytest`` stays fast on a laptop and in CI; the kernels nbval starts inherit the variables.
On a machine already busier than its core count, PyTorch's one-thread-per-core default makes small
models many times slower, so then one thread per process is used unless ``OMP_NUM_THREADS`` is set.
Every notebook cell nbval collects gets the marker ``notebooks`` (as do the site tests, which run
the lessons), so the fast inner loop is
``python -m pytest -m "not slow and not browser and not notebooks"``.
"""
import os


def pytest_configure(config):
    os.environ.setdefault("COURSE_PRESET", "smoke")
    os.environ.setdefault("MPLBACKEND", "Agg")
    if hasattr(os, "getloadavg") and os.getloadavg()[0] >= (os.cpu_count() or 1):
        os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_collection_modifyitems(session, config, items):
    """Notebook cells are marked ``notebooks``. Browser tests (marker ``browser``) run last, in their own
    order: by then the lessons have run (tests/site) and nbval the solutions, so the models they cache
    (the digit judge of notebook 04) are there."""
    for item in items:
        if str(getattr(item, "path", "")).endswith(".ipynb"):
            item.add_marker("notebooks")
    items.sort(key=lambda item: item.get_closest_marker("browser") is not None)  # stable: the rest keep their order
