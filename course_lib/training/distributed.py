"""Data-parallel training with PyTorch's own engine: ``torchrun`` + DistributedDataParallel.

    torchrun --standalone --nproc_per_node 4 -m course_lib train --task video-shapes --preset gpu

The :class:`~course_lib.training.Trainer` needs no change: built inside a process group of
``world_size`` W > 1 it wraps the model in DDP and splits every step's batch over the processes
(how, and why the maths stays that of one process: :mod:`course_lib.training.parallel`). This
module joins and leaves the process group and talks across it:

* **Launch.** torchrun (or any launcher) sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
  MASTER_PORT. When none of RANK, WORLD_SIZE, LOCAL_RANK is set the run is a plain single process
  and nothing here does anything; when one is set, all five must be, or :func:`launch_from_env`
  names the missing one before any connection is tried (no hang).
* **Backend.** NCCL on CUDA (each process on ``cuda:LOCAL_RANK``), gloo on CPU.
* **Timeout.** Every collective gives up after ``COURSE_DIST_TIMEOUT`` seconds (default 300): a
  peer that crashed closes its sockets and the others fail at once ("Connection closed by peer");
  one that hangs makes them fail after the timeout. Either way :func:`distributed_session` turns
  the error into :class:`PeersLostError` naming this rank, and destroys the process group on the
  way out, on success and on error. It also turns SIGTERM (what torchrun sends the other workers
  when one fails, or on Ctrl-C) into ``KeyboardInterrupt``, so rank 0 still saves its checkpoint.
* **Agreement.** The logged loss is averaged over the processes (:func:`mean_over_processes`), so
  the history, the gradient norm, the weights and the EMA are the same on every rank; decisions
  such as "the time budget is spent" are rank 0's (:func:`agree`).
* **Rank 0 only:** progress bars, printing, ``sample_fn`` (GIFs) and checkpoint files (written
  atomically). Every rank reads the checkpoint to resume.
"""
from __future__ import annotations

import datetime
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from course_lib._validation import fail

LAUNCH_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK")  # any of these set: we were launched by torchrun
RENDEZVOUS_VARIABLES = ("MASTER_ADDR", "MASTER_PORT")  # then these are needed too
TIMEOUT_ENV = "COURSE_DIST_TIMEOUT"
DEFAULT_TIMEOUT_SECONDS = 300.0
# gloo reports a peer that hung past the timeout as "Timed out waiting ... for recv" or, when the other
# side of the pair noticed first, "Application timeout caused pair closure".
_COMMUNICATION_MARKERS = ("Connection closed by peer", "Connection reset by peer", "Broken pipe", "Timed out",
                          "timed out", "Application timeout", "pair closure", "NCCL", "ProcessGroup", "gloo")


class PeersLostError(RuntimeError):
    """A collective failed: another process crashed, hung past the timeout, or the network broke."""


@dataclass(frozen=True)
class Launch:
    """Where this process sits: rank in [0, world_size), local_rank on its machine, its device and backend."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None  # None: a single process without a process group

    @property
    def is_main(self) -> bool:
        return self.rank == 0


# --- reading the launcher's environment ----------------------------------------------------------

def launch_from_env(env: Mapping[str, str] | None = None) -> dict[str, int] | None:
    """{"rank", "world_size", "local_rank"} from torchrun's variables, or None for a plain process.

    A partial set (e.g. RANK without MASTER_PORT) or a value that is not a whole number in range
    raises ``ValueError`` naming the variable.
    """
    env = os.environ if env is None else env
    if not any(name in env for name in LAUNCH_VARIABLES):
        return None
    for name in LAUNCH_VARIABLES + RENDEZVOUS_VARIABLES:
        if not env.get(name):
            fail(name, "the environment variable that torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, "
                       "MASTER_PORT all set; launch with torchrun, or set them all for each process)", "it unset")
    values = {}
    for name in LAUNCH_VARIABLES + ("MASTER_PORT",):
        try:
            values[name] = int(env[name])
        except ValueError:
            fail(name, "a whole number", env[name])
    if values["WORLD_SIZE"] < 1:
        fail("WORLD_SIZE", "a whole number >= 1", env["WORLD_SIZE"])
    if not 0 <= values["RANK"] < values["WORLD_SIZE"]:
        fail("RANK", f"a whole number in [0, {values['WORLD_SIZE'] - 1}] (WORLD_SIZE is {values['WORLD_SIZE']})",
             env["RANK"])
    if values["LOCAL_RANK"] < 0:
        fail("LOCAL_RANK", "a whole number >= 0", env["LOCAL_RANK"])
    if not 0 < values["MASTER_PORT"] < 65536:
        fail("MASTER_PORT", "a port number in [1, 65535]", env["MASTER_PORT"])
    return {"rank": values["RANK"], "world_size": values["WORLD_SIZE"], "local_rank": values["LOCAL_RANK"]}


def backend_for(device: torch.device) -> str:
    """"nccl" for CUDA devices, "gloo" otherwise."""
    return "nccl" if torch.device(device).type == "cuda" else "gloo"


def timeout_from_env(env: Mapping[str, str] | None = None) -> datetime.timedelta:
    """How long a collective waits for the other processes: ``COURSE_DIST_TIMEOUT`` seconds, default 300."""
    env = os.environ if env is None else env
    text = env.get(TIMEOUT_ENV)
    if text is None:
        return datetime.timedelta(seconds=DEFAULT_TIMEOUT_SECONDS)
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < 1e7:
        fail(TIMEOUT_ENV, "a number of seconds > 0", text)
    return datetime.timedelta(seconds=seconds)


# --- the process group ------------------------------------------------------------------------------

def is_distributed() -> bool:
    """True inside an initialised process group (of any size)."""
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    """Rank 0, or a plain single process: the one that prints, draws progress bars and writes files."""
    return rank() == 0


def init_distributed(device: torch.device | str = "cpu", timeout: datetime.timedelta | None = None,
                     env: Mapping[str, str] | None = None) -> Launch:
    """Join the process group torchrun describes (a no-op for a plain process); returns this process's Launch.

    device: "cpu" or "cuda" (then this process uses ``cuda:LOCAL_RANK``, backend NCCL; else gloo).
    """
    device = torch.device(device)
    found = launch_from_env(env)
    if found is None:
        return Launch(device=device)
    if device.type == "cuda":
        if found["local_rank"] >= torch.cuda.device_count():
            fail("LOCAL_RANK", f"a CUDA device index below {torch.cuda.device_count()} (GPUs on this machine); "
                               "launch at most that many processes per node", found["local_rank"])
        device = torch.device("cuda", found["local_rank"])
        torch.cuda.set_device(device)
    backend = backend_for(device)
    if not is_distributed():
        dist.init_process_group(backend, init_method="env://", rank=found["rank"], world_size=found["world_size"],
                                timeout=timeout or timeout_from_env(env))
    return Launch(found["rank"], found["world_size"], found["local_rank"], device, backend)


@contextmanager
def distributed_session(device: torch.device | str = "cpu", timeout: datetime.timedelta | None = None
                        ) -> Iterator[Launch]:
    """``with distributed_session("cuda") as launch:`` join torchrun's process group, and always leave it.

    Outside torchrun it yields a single-process Launch and does nothing else. Inside, a failed
    collective is re-raised as :class:`PeersLostError` naming this rank, SIGTERM becomes
    KeyboardInterrupt, and the process group is destroyed on the way out, also on error.
    """
    joined_here = not is_distributed()
    launch = init_distributed(device, timeout)
    previous_handler = _terminate_as_interrupt() if launch.backend else None
    try:
        yield launch
    except RuntimeError as error:
        if launch.backend and is_communication_error(error) and not isinstance(error, PeersLostError):
            raise PeersLostError(
                f"rank {launch.rank} of {launch.world_size}: lost the other processes "
                f"({str(error).strip().splitlines()[0][:300]}). Another process probably crashed or stopped "
                f"responding: its own error is printed above (torchrun also names the rank that failed first)."
            ) from error
        raise
    finally:
        if previous_handler is not None:
            signal.signal(signal.SIGTERM, previous_handler)
        if joined_here and is_distributed():
            dist.destroy_process_group()


def _terminate_as_interrupt():
    """Make SIGTERM raise KeyboardInterrupt (so the checkpoint is saved); returns the previous handler."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")

    try:
        return signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        return None


def is_communication_error(error: BaseException) -> bool:
    """True for errors of collectives (gloo/NCCL: a peer closed the connection, a timeout)."""
    if isinstance(error, (PeersLostError, getattr(dist, "DistError", PeersLostError))):
        return True
    return isinstance(error, RuntimeError) and any(marker in str(error) for marker in _COMMUNICATION_MARKERS)


# --- DDP and the collectives --------------------------------------------------------------------------

def wrap_model(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DistributedDataParallel (weights broadcast from rank 0); unchanged without a group."""
    if world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [device.index] if device.type == "cuda" and device.index is not None else None
    return DistributedDataParallel(model, device_ids=device_ids)


def mean_over_processes(value: float, device: torch.device | str = "cpu") -> float:
    """The mean of ``value`` over all processes (float64); ``value`` itself without a group."""
    world = world_size()
    if world == 1:
        return value
    device = torch.device(device) if dist.get_backend() == "nccl" else torch.device("cpu")
    total = torch.tensor([value], dtype=torch.float64, device=device)
    _collective(lambda: dist.all_reduce(total), total)
    return float(total.item()) / world


def agree(flag: bool, device: torch.device | str = "cpu") -> bool:
    """Rank 0's ``flag`` on every process (for decisions such as "the time budget is spent")."""
    if world_size() == 1:
        return bool(flag)
    device = torch.device(device) if dist.get_backend() == "nccl" else torch.device("cpu")
    decision = torch.tensor([int(bool(flag))], device=device)
    _collective(lambda: dist.broadcast(decision, src=0), decision)
    return bool(decision.item())


def gather_ints(value: int, device: torch.device | str = "cpu") -> list[int]:
    """[value of rank 0, value of rank 1, ...] on every process; [value] without a group."""
    if world_size() == 1:
        return [int(value)]
    device = torch.device(device) if dist.get_backend() == "nccl" else torch.device("cpu")
    mine = torch.tensor([int(value)], dtype=torch.int64, device=device)
    everyone = [torch.zeros_like(mine) for _ in range(world_size())]
    _collective(lambda: dist.all_gather(everyone, mine), mine, *everyone)
    return [int(t.item()) for t in everyone]


def barrier(device: torch.device | str = "cpu") -> None:
    """Wait for every process (a no-op without a group)."""
    if world_size() > 1:
        mean_over_processes(0.0, device)  # an all-reduce needs every process (NCCL's barrier() guesses the device)


def _collective(run: Callable[[], object], *tensors: torch.Tensor, timeout: float = 5.0) -> None:
    """``run()`` a blocking collective on ``tensors``; with gloo, return once its worker thread has let go of them.

    A gloo collective returns as soon as it completes, but its worker thread drops its references to
    the tensors a moment later, and dropping a tensor that Python also holds takes the GIL. If the
    process exits in that moment (after the last barrier), the thread takes the GIL of an interpreter
    being shut down and the process aborts ("terminate called without an active exception",
    SIGABRT). Waiting until every tensor's reference count is back where it was closes that gap (at
    most ``timeout`` seconds). Only for gloo, the CPU backend: NCCL's own watchdog thread holds its
    tensors for longer, and waiting for it would slow every step.
    """
    before = _reference_counts(tensors)
    run()
    if dist.get_backend() != "gloo":
        return
    deadline = time.perf_counter() + timeout
    while any(now > then for now, then in zip(_reference_counts(tensors), before)) and time.perf_counter() < deadline:
        time.sleep(1e-4)  # lets the worker thread take the GIL


def _reference_counts(tensors: tuple[torch.Tensor, ...]) -> list[int]:
    """Python reference counts of ``tensors`` (measured the same way before and after a collective)."""
    return [sys.getrefcount(tensor) for tensor in tensors]
