"""Fixtures shared by the unit tests.

* ``one_thread`` -- run a module's tests on one intra-op thread (tiny tensors gain nothing from
  threads, and on a busy machine two threads wait on each other); opt in with
  ``pytestmark = pytest.mark.usefixtures("one_thread")``.
* ``run_bench`` -- ``run_bench(name, *args)`` runs ``python -m course_lib bench NAME --quick --quiet
  ARGS --out <tmp>`` in-process and returns ``{"code", "text", "out"}`` (what it printed, where it wrote).
"""
import contextlib
import io

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def run_bench(tmp_path_factory):
    from course_lib.workshop.bench.__main__ import main

    def run(name: str, *args: str) -> dict:
        out = tmp_path_factory.mktemp(f"bench_{name}")
        stdout = io.StringIO()
        with contextlib.redirect_stdout(stdout):
            code = main([name, "--quick", "--quiet", *args, "--out", str(out)])
        return {"code": code, "text": stdout.getvalue(), "out": out}

    return run
