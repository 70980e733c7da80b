"""Gradient accumulation under DDP: 2 processes x accumulate 2 = 1 process x accumulate 4, no_sync on all but the last.

Two processes are started by hand with the rendezvous variables (gloo, CPU). Each trains the same
small MLP (with dropout) for STEPS steps with accumulate=2, so the batch of every step is 4 shards
of 4 examples: process r computes shards 2r and 2r + 1, entering DDP's ``no_sync`` for the first
(its gradients stay local) and all-reducing in the backward pass of the second. The result must
equal one process computing all 4 shards with accumulate=4, to float32 rounding: the scalings (1/2
per micro-batch and DDP's mean over 2 processes, 1/4 in one process) are exact in binary, but the
sums are associated differently -- (g0 + g1) + (g2 + g3) across processes, ((g0 + g1) + g2) + g3 in
one -- so the gradients differ in the last bit and AdamW's normalisation carries that into the
weights: measured 1.1e-6 after 4 steps of lr 3e-3, tolerance 1e-5. Training on the first two shards
only moves them by > 1e-4, so the test can fail.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
STEPS = 4
LAUNCH_TIMEOUT = 120  # seconds, start-up included (the machine is shared)

SETUP = '''
import torch
from torch import nn
from course_lib.models.mlp import MLPDenoiser
from course_lib.diffusion.schedules import make_schedule
from course_lib.diffusion.objectives import DiffusionObjective
from course_lib.training import TrainConfig, Trainer, random_rows


class DropoutMLP(MLPDenoiser):
    def __init__(self):
        torch.manual_seed(0)
        super().__init__(2, hidden=32, depth=2, time_dim=16)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x, t):
        return self.dropout(super().forward(x, t))


def build(**config):
    data = torch.randn(256, 2, generator=torch.Generator().manual_seed(1))
    return Trainer(DropoutMLP(), DiffusionObjective(make_schedule("linear", 50)), random_rows(data, 4),
                   TrainConfig(lr=3e-3, progress=False, seed=5, **config), "cpu")
'''

WORKER = SETUP + f'''
import os, sys
from contextlib import contextmanager
from torch.nn.parallel import DistributedDataParallel
from course_lib.training import distributed

torch.set_num_threads(1)
entered = [0]
original_no_sync = DistributedDataParallel.no_sync


@contextmanager
def counted_no_sync(self):
    entered[0] += 1
    with original_no_sync(self):
        yield


DistributedDataParallel.no_sync = counted_no_sync
with distributed.distributed_session("cpu") as launch:
    trainer = build(steps={STEPS}, accumulate=2).fit()
    torch.save({{"model": trainer.model.state_dict(), "ema": trainer.ema_model.state_dict(),
                "history": trainer.history, "shards": trainer.config.shards, "no_sync": entered[0],
                "world_size": trainer.world_size}}, os.path.join(sys.argv[1], f"rank{{launch.rank}}.pt"))
'''


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    out = tmp_path_factory.mktemp("accumulate_ddp")
    (out / "worker.py").write_text(WORKER)
    port = str(free_port())
    base = {key: value for key, value in os.environ.items() if key not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    base.update(PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]), OMP_NUM_THREADS="1",
                MASTER_ADDR="127.0.0.1", MASTER_PORT=port, WORLD_SIZE="2", LOCAL_RANK="0", COURSE_DIST_TIMEOUT="60")
    processes = [subprocess.Popen([sys.executable, str(out / "worker.py"), str(out)], env={**base, "RANK": str(rank)},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in (0, 1)]
    try:
        results = [process.communicate(timeout=LAUNCH_TIMEOUT) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.communicate()
    for process, (_, err) in zip(processes, results):
        assert process.returncode == 0, err[-3000:]
    return [torch.load(out / f"rank{rank}.pt", weights_only=True) for rank in (0, 1)]


def max_difference(a: dict, b: dict) -> float:
    assert list(a) == list(b)
    return max((x.double() - y.double()).abs().max().item() for x, y in zip(a.values(), b.values()))


def build(**config):
    namespace = {}
    exec(SETUP, namespace)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return namespace["build"](**config).fit()
    finally:
        torch.set_num_threads(before)


def test_each_process_accumulates_its_two_shards_and_syncs_only_on_the_last(two_processes):
    for state in two_processes:
        assert state["world_size"] == 2 and state["shards"] == 4
        assert state["no_sync"] == STEPS  # one of the two micro-batches of every step skipped the all-reduce
    rank0, rank1 = two_processes
    assert max_difference(rank0["model"], rank1["model"]) == 0 and rank0["history"] == rank1["history"]


def test_two_processes_accumulating_two_equal_one_process_accumulating_four(two_processes):
    one = build(steps=STEPS, accumulate=4)
    assert one.config.shards == 4 and one.config.accumulate == 4
    assert max_difference(one.model.state_dict(), two_processes[0]["model"]) <= 1e-5
    assert max_difference(one.ema_model.state_dict(), two_processes[0]["ema"]) <= 1e-5
    assert one.history["loss"] == pytest.approx(two_processes[0]["history"]["loss"], abs=1e-6)
    two = build(steps=STEPS, accumulate=2)  # the first two shards only: another trajectory, the test can fail
    assert max_difference(two.model.state_dict(), two_processes[0]["model"]) > 1e-4
