"""Where the time and the memory of a training step go (notebooks 11 and 12; seed §8.2 and §9.3, "compute").

Every function takes what the trainer uses -- the network, its ``loss_fn(model, batch, generator)``
and one batch from ``make_batch`` -- so the numbers are those of real training, not of a stand-in:

* :func:`time_training_steps` / :func:`compare_settings` -- seconds per optimiser step (wall and
  CPU time) in fp32, bf16 or fp16 autocast, eager or ``torch.compile``; several settings are
  measured *interleaved*, one step of each per round, so other programs on the machine slow them alike
  (:func:`time_steps` does the timing for any step function, e.g. a ``Trainer``'s);
* :func:`training_memory` -- bytes of weights, gradients, AdamW moments (:func:`parameter_memory`)
  and of the activations autograd keeps for the backward pass (:func:`saved_activation_bytes`,
  counted exactly with saved-tensor hooks), and :func:`measured_step_memory` -- what one step
  really adds at its peak (:func:`peak_memory`: peak RSS on CPU, the CUDA allocator on a GPU);
* :func:`step_flops` -- the multiply-adds of a forward + backward pass, counted by
  ``torch.utils.flop_counter`` on the meta device (nothing is computed, so any size is free);
* :func:`profile_step` -- ``torch.profiler`` on one step: time per phase, per operator and per
  kind of operator.

The memory estimate printed before training (:mod:`course_lib.training.memory`) is built from the
same counts. Each step k of a measurement draws its timesteps and noise from a generator seeded
with ``seed + k``: every setting sees the same t and ε, and the same seed gives the same losses.
"""
from __future__ import annotations

import copy
import ctypes
import ctypes.util
import dataclasses
import gc
import resource
import statistics
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from course_lib._validation import check_choice, check_positive_int, fail
from course_lib.config import autocast_dtype
from course_lib.training.parallel import to_device

PRECISIONS = ("fp32", "bf16", "fp16")
ADAMW_MOMENTS = 2  # AdamW keeps two moments per trainable parameter: exp_avg (m) and exp_avg_sq (v)
PHASES = ("forward + loss", "backward", "optimizer")


# --- one training step ---------------------------------------------------------------------------

def _check_model(model: object) -> nn.Module:
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__)
    if not any(p.requires_grad for p in model.parameters()):
        fail("model", "a network with trainable parameters", type(model).__name__)
    return model


def _check_loss_fn(loss_fn: object) -> None:
    if not callable(loss_fn):
        fail("loss_fn", "a function loss_fn(model, batch, generator)", type(loss_fn).__name__)


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _to_device(batch, device: torch.device, memory_format: torch.memory_format = torch.contiguous_format):
    """A tensor, or a tuple/list/dict of tensors (e.g. (images, labels)), moved to ``device`` as the trainer moves it."""
    items = batch.values() if isinstance(batch, dict) else batch if isinstance(batch, (tuple, list)) else None
    if not isinstance(batch, torch.Tensor) and not (items and all(isinstance(b, torch.Tensor) for b in items)):
        fail("batch", "a tensor or a tuple/list/dict of tensors (what make_batch returns)", type(batch).__name__)
    return to_device(batch, device, memory_format)


def batch_size(batch, argument: str = "batch") -> int:
    """Examples in a batch: the first dimension of its first tensor (``argument`` names it in errors)."""
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0:
            fail(argument, "tensors with a batch dimension (B, ...)", "a 0-dim tensor")
        return batch.shape[0]
    items = list(batch.values()) if isinstance(batch, dict) else list(batch) if isinstance(batch, (tuple, list)) else []
    if not items:
        fail(argument, "a tensor, or a non-empty tuple/list/dict of tensors", type(batch).__name__)
    return batch_size(items[0], argument)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Stepper:
    """A private copy of the model with its own AdamW (and GradScaler for fp16 on CUDA): ``step(k)`` trains once."""

    def __init__(self, model: nn.Module, loss_fn, batch, precision: str, compile: bool, seed: int):
        self.device = _device_of(model)
        self.model = copy.deepcopy(model).train()
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.amp_dtype = autocast_dtype(precision, self.device)  # fp16 on CPU falls back to bf16
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)
        self.forward_model = torch.compile(self.model) if compile else self.model
        self.loss_fn, self.batch, self.seed = loss_fn, _to_device(batch, self.device), seed

    def autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def loss(self, k: int) -> torch.Tensor:
        with self.autocast():
            loss = self.loss_fn(self.forward_model, self.batch, torch.Generator().manual_seed(self.seed + k))
        if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
            fail("loss_fn", "to return a scalar tensor", type(loss).__name__)
        return loss

    def step(self, k: int) -> float:
        loss = self.loss(k)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss.item()


# --- timing --------------------------------------------------------------------------------------

@dataclass
class StepTiming:
    """One setting's training steps: ``wall_s`` / ``cpu_s`` per timed step, ``first_s`` the very first step.

    ``first_s`` includes one-time work: allocating memory, choosing kernels, and with
    ``compiled`` the whole ``torch.compile``. ``loss`` is the first step's loss (in
    :func:`compare_settings` the same batch, t and ε for every setting, so settings differ only by
    rounding). batch_size: examples per step (None: not known).
    """

    name: str
    device: str
    threads: int
    first_s: float
    loss: float
    batch_size: int | None = None
    precision: str = "fp32"
    compiled: bool = False
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)

    @property
    def median_s(self) -> float:
        """Median wall seconds per step."""
        return statistics.median(self.wall_s)

    @property
    def cpu_per_step_s(self) -> float:
        """Median CPU seconds per step (all threads of the process): less sensitive than wall time to other programs on the machine."""
        return statistics.median(self.cpu_s)

    @property
    def cpu_share(self) -> float | None:
        """CPU seconds / (wall seconds x threads): 1.0 when every thread ran all the time; None on a GPU."""
        if self.device != "cpu":
            return None
        return sum(self.cpu_s) / (sum(self.wall_s) * self.threads)

    @property
    def examples_per_s(self) -> float:
        """Training throughput: examples (clips, images) per wall second."""
        return self.batch_size / self.median_s


def _check_steps(steps: int, warmup: int) -> None:
    check_positive_int("steps", steps)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        fail("warmup", "an int >= 0", warmup)


def _timed(step: Callable[[int], Any], k: int, device: torch.device) -> tuple[float, float, Any]:
    """(wall seconds, CPU seconds of this process, result) of ``step(k)``, the device synchronised around it."""
    _sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    result = step(k)
    _sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu, result


def time_steps(steps_by_name: Mapping[str, Callable[[int], float]], device: torch.device | str = "cpu",
               steps: int = 5, warmup: int = 1) -> dict[str, StepTiming]:
    """Time training steps of several step functions, interleaved -> {name: StepTiming}.

    ``step(k)`` runs training step k and returns its loss (a :class:`~course_lib.training.Trainer`'s
    ``lambda k: trainer.train_step()`` does). Each function first runs ``warmup`` untimed steps (at
    least one, whose time is kept as ``first_s``); then ``steps`` rounds run one step of every
    function in turn, so that other programs on the machine slow them alike.
    """
    _check_steps(steps, warmup)
    device = torch.device(device)
    timings = {}
    for name, step in steps_by_name.items():
        first_s, _, loss = _timed(step, 0, device)
        for k in range(1, warmup):
            step(k)
        timings[name] = StepTiming(name, device.type, torch.get_num_threads(), first_s, loss)
    for k in range(max(warmup, 1), max(warmup, 1) + steps):
        for name, step in steps_by_name.items():
            wall, cpu, _ = _timed(step, k, device)
            timings[name].wall_s.append(wall)
            timings[name].cpu_s.append(cpu)
    return timings


def compare_settings(model: nn.Module, loss_fn, batch, settings: Mapping[str, Mapping], steps: int = 5,
                     warmup: int = 1, seed: int = 0) -> dict[str, StepTiming]:
    """Time training steps of ``model`` under several settings, interleaved -> {name: StepTiming}.

    settings: {name: {"precision": "fp32" | "bf16" | "fp16", "compile": bool}} (missing keys:
    fp32, eager). Each setting trains its own copy of the model (the caller's is not changed) with
    AdamW; after ``warmup`` untimed steps each (at least one, whose time is kept as ``first_s``), the
    ``steps`` timed rounds run one step of every setting in turn (:func:`time_steps`). batch: one
    batch as ``make_batch`` returns it, e.g. (B, T, C, H, W) clips.
    """
    _check_model(model)
    _check_loss_fn(loss_fn)
    if not isinstance(settings, Mapping) or not settings:
        fail("settings", "a non-empty dict {name: {'precision': ..., 'compile': ...}}", settings)
    _check_steps(steps, warmup)
    batch = _to_device(batch, _device_of(model))
    steppers = {}
    for name, setting in settings.items():
        if not isinstance(setting, Mapping) or set(setting) - {"precision", "compile"}:
            fail("settings", "for each name a dict with the keys 'precision' and/or 'compile'", {name: setting})
        precision = check_choice("precision", setting.get("precision", "fp32"), PRECISIONS)
        compiled = setting.get("compile", False)
        if not isinstance(compiled, bool):
            fail("compile", "True or False", compiled)
        steppers[name] = _Stepper(model, loss_fn, batch, precision, compiled, seed)
    timings = time_steps({name: stepper.step for name, stepper in steppers.items()}, _device_of(model), steps, warmup)
    for name, stepper in steppers.items():
        setting = settings[name]
        timings[name] = dataclasses.replace(timings[name], batch_size=batch_size(batch),
                                            precision=setting.get("precision", "fp32"),
                                            compiled=setting.get("compile", False))
    return timings


def time_training_steps(model: nn.Module, loss_fn, batch, precision: str = "fp32", compile: bool = False,
                        steps: int = 5, warmup: int = 1, seed: int = 0) -> StepTiming:
    """Seconds per training step (forward, loss, backward, AdamW) of a copy of ``model`` on ``batch``.

    precision: autocast dtype ("fp16" is bf16 on CPU, and uses a GradScaler on CUDA, as in the
    Trainer). compile: ``torch.compile`` the copy (its first step then includes the compilation).
    The caller's model is not changed.
    """
    return compare_settings(model, loss_fn, batch, {precision: {"precision": precision, "compile": compile}},
                            steps, warmup, seed)[precision]


# --- memory --------------------------------------------------------------------------------------

@dataclass
class StepMemory:
    """Bytes a training step needs: what is resident from the start and what one step adds.

    weights: the parameters. gradients: one per trainable parameter (same dtype). optimizer:
    AdamW's two moments per trainable parameter (same dtype). activations: the tensors autograd
    keeps from the forward pass for the backward pass (inputs of convolutions, attention weights,
    ...): they grow with the batch and are freed during backward.
    """

    weights: int
    gradients: int
    optimizer: int
    activations: int

    @property
    def step_bytes(self) -> int:
        """What one training step adds on top of the weights: gradients + optimizer state + activations."""
        return self.gradients + self.optimizer + self.activations

    @property
    def total(self) -> int:
        return self.weights + self.step_bytes


def parameter_memory(model: nn.Module) -> StepMemory:
    """Weights, gradients and AdamW moments of ``model``, counted from its parameters (numel x element
    size; the activations are left at 0). Buffers are not weights: they have no gradient and no moments."""
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    gradients = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    return StepMemory(weights, gradients, ADAMW_MOMENTS * gradients, 0)  # exp_avg, exp_avg_sq like each parameter


def saved_activation_bytes(model: nn.Module, loss_fn, batch, precision: str = "fp32", seed: int = 0,
                           memory_format: torch.memory_format = torch.contiguous_format) -> int:
    """Bytes of the tensors autograd saves for backward during ``loss_fn(model, batch, generator)``.

    Counted with ``torch.autograd.graph.saved_tensors_hooks``: every distinct storage once, the
    parameters themselves excluded (they are resident anyway); casts of the weights made by
    autocast count, since they are new memory. ``batch`` is moved to the model's device as the
    trainer moves it (4-D tensors in ``memory_format``). No backward pass and no update is run.
    """
    if not isinstance(model, nn.Module):
        fail("model", "a torch.nn.Module", type(model).__name__)
    _check_loss_fn(loss_fn)
    check_choice("precision", precision, PRECISIONS)
    device = _device_of(model)
    batch = _to_device(batch, device, memory_format)
    parameters = {p.untyped_storage().data_ptr() for p in model.parameters()}
    saved: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in parameters:
            saved[storage.data_ptr()] = storage.nbytes()
        return tensor

    amp_dtype = autocast_dtype(precision, device)
    cast = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor), cast:
        loss = loss_fn(model, batch, torch.Generator().manual_seed(seed))
    del loss  # the graph, and with it the saved tensors, is freed here
    return sum(saved.values())


def training_memory(model: nn.Module, loss_fn, batch, precision: str = "fp32", seed: int = 0) -> StepMemory:
    """The :class:`StepMemory` of one AdamW training step of ``model`` on ``batch``.

    Weights, gradients and AdamW moments are counted from the parameters (:func:`parameter_memory`);
    activations are measured by :func:`saved_activation_bytes`.
    """
    _check_model(model)
    return dataclasses.replace(parameter_memory(model),
                               activations=saved_activation_bytes(model, loss_fn, batch, precision, seed))


def _proc_status_kib(name: str) -> int | None:
    """A "VmRSS"/"VmHWM" line of /proc/self/status in KiB, or None off Linux."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0): True if it worked."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _release_free_memory() -> None:
    """Collect garbage and give freed heap memory back to the OS (glibc malloc_trim), so RSS starts low."""
    gc.collect()
    libc = ctypes.util.find_library("c")
    if libc and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(libc).malloc_trim(0)
        except (OSError, AttributeError):
            pass


def peak_memory(fn: Callable[[], Any], device: torch.device | str = "cpu") -> tuple[Any, int | None, str]:
    """Run ``fn()`` -> (its result, peak extra memory in bytes or None, how it was measured).

    CUDA: ``torch.cuda.max_memory_allocated`` minus what was allocated before (tensors only).
    CPU on Linux: growth of the process's peak resident set (VmHWM, reset through
    /proc/self/clear_refs) over the resident set before, after freeing what Python and malloc
    hold: everything the process touched, tensors, allocator slack and libraries' buffers.
    Elsewhere: growth of ``ru_maxrss``, which only rises, so a peak below an earlier one reads 0.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        return result, torch.cuda.max_memory_allocated(device) - before, "torch.cuda.max_memory_allocated"
    _release_free_memory()
    if _reset_peak_rss():
        before = _proc_status_kib("VmRSS")
        result = fn()
        peak = _proc_status_kib("VmHWM")
        if before is not None and peak is not None:
            return result, max(peak - before, 0) * 1024, "peak RSS growth (VmHWM)"
        return result, None, "not measured"
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = fn()
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    return result, grown * unit, "max RSS growth (ru_maxrss)"


def measured_step_memory(model: nn.Module, loss_fn, batch, precision: str = "fp32", seed: int = 0) -> tuple[int | None, str]:
    """(bytes one first training step of a fresh copy adds at its peak, how it was measured).

    Measured by :func:`peak_memory`: on CUDA the allocator (tensors only), on CPU (Linux) the growth
    of the peak resident set -- everything the process touched, so allocator slack and library
    buffers count too. The copy's weights exist before the measurement starts, so the number
    compares with :attr:`StepMemory.step_bytes`.
    """
    _check_model(model)
    _check_loss_fn(loss_fn)
    stepper = _Stepper(model, loss_fn, batch, check_choice("precision", precision, PRECISIONS), False, seed)
    _, peak, method = peak_memory(lambda: stepper.step(0), stepper.device)
    return peak, method


# --- FLOPs ---------------------------------------------------------------------------------------

def step_flops(model: nn.Module, shape: Sequence[int]) -> dict[str, int]:
    """Floating-point operations of one forward + backward pass of ``model(x, t)`` for x of ``shape``.

    Counted by ``torch.utils.flop_counter.FlopCounterMode`` on a copy of the model on the meta
    device: no memory is allocated and nothing is computed, so the gpu preset's shapes cost
    nothing to count. Only matrix products and convolutions are counted (2 FLOPs per
    multiply-add); element-wise work (norms, activations, softmax) is not. AdamW is not counted.
    Returns {operator name: FLOPs} with "total".
    """
    from torch.utils.flop_counter import FlopCounterMode

    _check_model(model)
    shape = tuple(shape)
    if len(shape) < 2 or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in shape):
        fail("shape", "a sequence of at least 2 positive ints, e.g. (B, T, C, H, W)", shape)
    meta = copy.deepcopy(model).to("meta").train()
    x = torch.zeros(shape, device="meta")
    t = torch.zeros(shape[0], dtype=torch.long, device="meta")
    with FlopCounterMode(display=False) as counter:
        F.mse_loss(meta(x, t).float(), x).backward()
    counts = {str(op).split(".")[-1]: int(n) for op, n in counter.get_flop_counts().get("Global", {}).items()}
    return {**counts, "total": int(counter.get_total_flops())}


# --- profile -------------------------------------------------------------------------------------

# Kinds of operator, tried in order: an operator is of a kind when one of the "_"-separated words
# of its name starts with one of the kind's keys ("aten::native_group_norm_backward" -> "norm").
OP_KINDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("convolution", ("conv",)),
    ("matrix products (attention, linear)", ("bmm", "mm", "addmm", "baddbmm", "matmul", "einsum", "linear")),
    ("normalisation", ("norm",)),
    ("softmax", ("softmax",)),
    ("copies and reshapes", ("copy", "clone", "cat", "stack", "contiguous", "index")),
)
ELEMENTWISE = "element-wise and other small ops"
OPTIMIZER = "optimizer (AdamW)"
OVERHEAD = "Python and autograd bookkeeping"


def op_kind(name: str) -> str:
    """The kind of a profiler event, e.g. "aten::mkldnn_convolution" -> "convolution".

    Events that are not operators -- autograd's nodes ("ConvolutionBackward0"), its engine, and
    ``record_function`` ranges -- are bookkeeping: their self time is Python and autograd work.
    """
    if "::" not in name or name.startswith("autograd::"):
        return OVERHEAD
    words = name.split("::", 1)[1].strip("_").lower().split("_")
    for kind, keys in OP_KINDS:
        if any(word.startswith(key) for word in words for key in keys):
            return kind
    return ELEMENTWISE


@dataclass
class OpTime:
    """One operator in a profile: how often it ran and its *self* seconds (children excluded)."""

    name: str
    calls: int
    self_s: float
    kind: str


@dataclass
class StepProfile:
    """One profiled training step. ``phases``: seconds of forward + loss, backward, optimizer;
    ``ops``: operators by self time, largest first (their self times add up to the step)."""

    total_s: float
    phases: dict[str, float]
    ops: list[OpTime]
    device: str

    def by_kind(self) -> dict[str, float]:
        """Self seconds summed per kind of operator (see :data:`OP_KINDS`), largest first."""
        kinds: dict[str, float] = {}
        for op in self.ops:
            kinds[op.kind] = kinds.get(op.kind, 0.0) + op.self_s
        return dict(sorted(kinds.items(), key=lambda item: -item[1]))

    def table(self, top: int = 12) -> str:
        """The ``top`` operators as text: name, kind, calls, self ms, share of the step."""
        check_positive_int("top", top)
        total = sum(op.self_s for op in self.ops) or 1.0
        lines = [f"{'operator':38s} {'kind':36s} {'calls':>5s} {'self ms':>8s} {'share':>6s}"]
        for op in self.ops[:top]:
            lines.append(f"{op.name[:38]:38s} {op.kind[:36]:36s} {op.calls:5d} {1e3 * op.self_s:8.1f} "
                         f"{op.self_s / total:6.1%}")
        return "\n".join(lines)


def profile_step(model: nn.Module, loss_fn, batch, precision: str = "fp32", warmup: int = 1,
                 seed: int = 0) -> StepProfile:
    """Profile one training step of a copy of ``model`` with ``torch.profiler`` (after ``warmup`` steps).

    The step is split into the phases "forward + loss", "backward" (with zero_grad) and
    "optimizer" (``record_function`` ranges). Each event's self time -- its time minus its
    children's -- is attributed to one operator, so the operator times add up to the step; an
    operator inside the optimizer phase counts as "optimizer (AdamW)". On CUDA the device time
    of each operator is used.
    """
    from torch.profiler import ProfilerActivity, profile, record_function

    _check_model(model)
    _check_loss_fn(loss_fn)
    check_choice("precision", precision, PRECISIONS)
    if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 0:
        fail("warmup", "an int >= 0", warmup)
    stepper = _Stepper(model, loss_fn, batch, precision, False, seed)
    for k in range(warmup):
        stepper.step(k)
    cuda = stepper.device.type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])

    def step() -> None:
        with record_function(PHASES[0]):
            loss = stepper.loss(warmup)
            _sync(stepper.device)
        with record_function(PHASES[1]):
            stepper.optimizer.zero_grad(set_to_none=True)
            stepper.scaler.scale(loss).backward()
            _sync(stepper.device)
        with record_function(PHASES[2]):
            stepper.scaler.step(stepper.optimizer)
            stepper.scaler.update()
            _sync(stepper.device)

    start = time.perf_counter()
    with profile(activities=activities) as prof:
        step()
    total_s = time.perf_counter() - start
    return _summarise(prof.events(), total_s, stepper.device.type, cuda)


def _summarise(events, total_s: float, device: str, cuda: bool) -> StepProfile:
    """Self time per operator (each event under its phase), phase totals, sorted.

    Only events recorded on the CPU side are read (on CUDA, an operator's kernels are counted
    through its ``self_device_time_total``), so no time is counted twice.
    """
    from torch.autograd import DeviceType

    phases = {name: 0.0 for name in PHASES}
    ops: dict[str, OpTime] = {}
    for event in events:
        if event.device_type != DeviceType.CPU:
            continue
        if event.name in PHASES:
            phases[event.name] += event.cpu_time_total / 1e6
        in_optimizer = _phase_of(event) == PHASES[2] and event.name != PHASES[2]
        kind = OPTIMIZER if in_optimizer else op_kind(event.name)
        self_us = getattr(event, "self_device_time_total", 0) if cuda and kind != OVERHEAD else event.self_cpu_time_total
        entry = ops.setdefault(event.name, OpTime(event.name, 0, 0.0, kind))
        entry.calls += 1
        entry.self_s += self_us / 1e6
    ordered = sorted((op for op in ops.values() if op.self_s > 0), key=lambda op: -op.self_s)
    return StepProfile(total_s, phases, ordered, device)


def _phase_of(event) -> str | None:
    """The phase (record_function range) an event ran inside, or None."""
    while event is not None:
        if event.name in PHASES:
            return event.name
        event = event.cpu_parent
    return None
