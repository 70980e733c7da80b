"""``python -m course_lib doctor``: is this machine ready for the course? A check for before a workshop.

    python -m course_lib doctor          # one line per topic, then what to do; exit 1 if a lesson would stop

Each probe looks at one thing and returns a :class:`Finding`: a line of facts, and what is wrong in
two kinds. An **error** is a piece a lesson needs that is missing or broken -- the lesson would stop
(a bad ``COURSE_PRESET``, no ``imageio-ffmpeg`` for lesson 05, a damaged or missing shipped model,
nowhere to save checkpoints). A **warning** is something that makes the course worse but not
broken: no widgets (static figures and printed quiz answers instead), few threads or a busy
machine (slower), little memory, the ``smoke`` preset (samples are noise). :func:`run` prints the
facts, one line per warning, one ``error:`` line per error on stderr, and a verdict; it returns 1
when there is an error, else 0. A probe that fails in an unforeseen way becomes a warning, never a
traceback.

The probes are cheap: no model is built, no lesson is run, a shipped file is read but not
loaded into a network. Most of the run time is importing torch.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

import course_lib
from course_lib.config import DEVICE_ENV, PRESET_ENV, PRESETS, Preset, get_device, get_preset
from course_lib.training.memory import MEMINFO, available_memory, format_bytes

if TYPE_CHECKING:
    from course_lib.workshop.recipes import Recipe

MIN_PYTHON = (3, 10)  # pyproject.toml's requires-python
MIN_TORCH = (2, 1)  # pyproject.toml's dependency
MIN_IPYWIDGETS = 8  # the widget protocol of JupyterLab 4
LOW_MEMORY = 2 * 2**30  # below this available, warn: a training step needs a few hundred MB beside JupyterLab's kernels
LOW_DISK = 1 * 2**30  # below this free, warn: the cpu preset's checkpoints of all lessons take a few hundred MB
NO_DISK = 100 * 2**20  # below this free, a checkpoint may not be saved at all: an error
SHIPPED_PRESET = "cpu"  # the preset the shipped models were trained in
# The recipes (task, model, objective, steps; None: the recipe's own) whose trained models ship with the
# course (course_lib/workshop/pretrained/), and the lessons that load them through train_or_load.
SHIPPED = {("digits", "unet2d", None, None): "lesson 04's exercises, 11, 13",
           ("digits", "unet2d", "flow", None): "lesson 13",
           ("video-shapes", "unet3d", None, None): "lessons 07, 08, 09, 11",
           ("video-shapes", "conv_lstm", None, None): "lessons 06, 07",
           ("video-digits", "conv_lstm", None, 1000): "lesson 06",
           ("video-digits", "unet3d", None, None): "lesson 10",
           ("video-shapes", "forcing", None, None): "lesson 14",
           ("video-shapes", "autoencoder", None, None): "lesson 15"}
# Lesson 08's frame-conditional U-Nets (course_lib.workshop.predictor), shipped too: (task, context_noise).
SHIPPED_PREDICTORS = {("video-shapes", 0): "lesson 08 (and lesson 14's comparison)",
                      ("video-shapes", 150): "lesson 08"}
WIDGET_EXTENSION = "@jupyter-widgets/jupyterlab-manager"  # JupyterLab's widget renderer (jupyterlab_widgets)
# Where `python -m course_lib notebooks time --preset P` writes its record (course_lib.workshop.build.timing).
LESSON_TIMES = "benchmarks/lesson-times-{preset}.json"


@dataclass
class Finding:
    """One topic: ``fact`` (a line), and what to do about each ``warnings`` / ``errors`` entry (a line each)."""

    topic: str
    fact: str
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What several probes need: the course folder, the preset and device the lessons will use (None: broken) and
    why they are broken (one line each)."""

    root: Path
    preset: Preset | None
    device: torch.device | None
    setting_errors: list[str] = field(default_factory=list)


def course_root() -> Path:
    """The course folder (notebooks/, checkpoints/, benchmarks/): the checkout course_lib lives in, else the current folder."""
    checkout = Path(course_lib.__file__).resolve().parents[1]
    return checkout if (checkout / "notebooks").is_dir() else Path.cwd()


def _version(text: str) -> tuple[int, ...]:
    """'2.13.0+cpu' -> (2, 13); '8.1.9' -> (8, 1)."""
    return tuple(int(part) for part in re.findall(r"\d+", text)[:2])


def _distribution_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


# --- the probes ------------------------------------------------------------------------------------

def probe_python(context: Context) -> Finding:
    version = platform.python_version()
    finding = Finding("python", f"{version} ({platform.python_implementation()}, {sys.executable})")
    if sys.version_info[:2] < MIN_PYTHON:
        finding.errors.append(f"Python {version} is older than the course needs ({'.'.join(map(str, MIN_PYTHON))}); "
                              "install a newer Python and the course into it")
    return finding


def probe_torch(context: Context) -> Finding:
    build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU build"
    finding = Finding("torch", f"{torch.__version__} ({build})")
    if _version(torch.__version__) < MIN_TORCH:
        finding.errors.append(f"torch {torch.__version__} is older than the course needs (2.1): "
                              "python -m pip install torch==2.13.0")
    return finding


def _cores() -> int:
    """CPU cores this process may use (its affinity, which containers narrow), else os.cpu_count()."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def probe_threads(context: Context) -> Finding:
    cores, threads, load = _cores(), torch.get_num_threads(), _load()
    omp = os.environ.get("OMP_NUM_THREADS")
    fact = (f"torch uses {threads} thread{'s' * (threads != 1)} on {cores} CPU core{'s' * (cores != 1)} "
            f"(OMP_NUM_THREADS={omp if omp is not None else 'unset'})")
    finding = Finding("threads", fact + ("" if load is None else f"; load {load:.1f}"))
    if cores < 2:
        finding.warnings.append("one CPU core: lessons and training take longer than the times measured on 2 cores; "
                                "rely on the shipped weights, pre-train the rest, or use Colab")
    elif threads < 2:
        finding.warnings.append(f"torch uses 1 thread of {cores} cores: training is slower than on 2 threads; unless "
                                "the machine is shared, start JupyterLab with OMP_NUM_THREADS=2")
    if threads > cores:
        finding.warnings.append(f"{threads} threads on {cores} cores wait on each other: start JupyterLab with "
                                f"OMP_NUM_THREADS={cores}")
    if load is not None and load >= cores:
        finding.warnings.append(f"the machine is busy (load {load:.1f} on {cores} cores): lessons run slower; close "
                                "other jobs, or start JupyterLab with OMP_NUM_THREADS=1")
    return finding


def _total_memory() -> int | None:
    """Bytes of RAM: MemTotal of /proc/meminfo (Linux), else the page count from sysconf (most Unixes), else None."""
    try:
        with open(MEMINFO) as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _available_memory() -> tuple[int | None, str]:
    """(bytes of RAM free for training, where it comes from): MemAvailable, else free pages from sysconf."""
    available, source = available_memory("cpu")
    if available is None:
        try:
            available, source = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"), "free pages (sysconf)"
        except (AttributeError, ValueError, OSError):
            pass
    return available, source


def probe_memory(context: Context) -> Finding:
    total, (available, source) = _total_memory(), _available_memory()
    fact = f"{format_bytes(total) if total else 'unknown'} total, "
    fact += f"{format_bytes(available)} available ({source})" if available is not None else "available unknown"
    finding = Finding("memory", fact)
    if context.device is not None and context.device.type == "cuda":
        free, _ = available_memory(context.device)
        props = torch.cuda.get_device_properties(context.device)
        finding.fact += f"; GPU {props.name}: {format_bytes(props.total_memory)}, {format_bytes(free)} free"
    if available is not None and available < LOW_MEMORY:
        finding.warnings.append(f"only {format_bytes(available)} of memory available: a training step of the cpu "
                                "preset needs a few hundred MB besides JupyterLab; shut down other notebooks' "
                                "kernels, or use COURSE_PRESET=smoke")
    return finding


def preset_and_device() -> tuple[Preset | None, torch.device | None, list[str]]:
    """The preset and device the lessons will choose (get_preset(), get_device()), with an error line for each that fails."""
    errors, preset, device = [], None, None
    try:
        preset = get_preset()
    except ValueError as error:
        errors.append(f"{error}; set {PRESET_ENV} to one of {', '.join(PRESETS)}, or unset it")
    try:
        device = get_device()
    except ValueError as error:
        errors.append(f"{error}; set {DEVICE_ENV} to cpu, or unset it")
    return preset, device, errors


def probe_preset(context: Context) -> Finding:
    preset, device = context.preset, context.device
    chosen = os.environ.get(PRESET_ENV)
    why = f"{PRESET_ENV}={chosen}" if chosen else f"{PRESET_ENV} unset, " + (
        "CUDA found" if torch.cuda.is_available() else "no CUDA GPU")
    fact = (f"{preset.name if preset else '?'} on {device.type if device else '?'} ({why}"
            + (f"; {DEVICE_ENV}={os.environ[DEVICE_ENV]}" if os.environ.get(DEVICE_ENV) else "") + ")")
    finding = Finding("preset", fact, errors=list(context.setting_errors))
    if preset is not None and device is not None:
        if preset.name == "gpu" and device.type != "cuda":
            finding.warnings.append(f"the gpu preset on a {device.type} trains for hours per lesson: "
                                    f"set {PRESET_ENV}=cpu")
        elif preset.name == "smoke":
            finding.warnings.append("the smoke preset runs every lesson in about a minute but its models are barely "
                                    f"trained (samples are noise): set {PRESET_ENV}=cpu for the workshop")
        elif preset.name == "cpu" and device.type == "cuda":
            finding.warnings.append(f"a CUDA GPU is here but {PRESET_ENV}=cpu: fine for the shipped weights; "
                                    f"unset {PRESET_ENV} for the gpu preset's full sizes")
    return finding


def _import_version(module: str) -> tuple[str | None, str | None]:
    """(version, None) if ``module`` imports, else (None, why not) -- any error, since a broken install raises anything."""
    try:
        imported = importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 -- ImportError, or a broken dependency's own error
        return None, f"{type(error).__name__}: {error}".splitlines()[0]
    return str(getattr(imported, "__version__", "?")), None


def _labextension_dirs() -> list[Path]:
    """The folders JupyterLab loads prebuilt extensions from (jupyter_core's data path, else this environment's)."""
    try:
        from jupyter_core.paths import jupyter_path

        return [Path(folder) for folder in jupyter_path("labextensions")]
    except Exception:  # noqa: BLE001 -- no or a broken jupyter_core: look where pip puts them
        return [Path(sys.prefix) / "share" / "jupyter" / "labextensions"]


def _widget_extension() -> Path | None:
    """The folder of JupyterLab's widget extension, or None when JupyterLab would show widgets as text."""
    for folder in _labextension_dirs():
        candidate = folder / WIDGET_EXTENSION
        if (candidate / "package.json").is_file():
            return candidate
    return None


def probe_widgets(context: Context) -> Finding:
    ipywidgets, why = _import_version("ipywidgets")
    lab = _distribution_version("jupyterlab")
    extension = _widget_extension()
    parts = [f"ipywidgets {ipywidgets}" if ipywidgets else "no ipywidgets",
             f"JupyterLab {lab}" if lab else "no JupyterLab",
             f"its widget extension ({_distribution_version('jupyterlab_widgets') or extension})" if extension
             else "no JupyterLab widget extension"]
    finding = Finding("widgets", "; ".join(parts))
    fallback = "sliders become static figures and the quizzes print their answers"
    if ipywidgets is None:
        finding.warnings.append(f"ipywidgets cannot be imported ({why}): {fallback}; python -m pip install "
                                f"'ipywidgets>={MIN_IPYWIDGETS}' and restart JupyterLab")
    elif _version(ipywidgets)[:1] < (MIN_IPYWIDGETS,):
        finding.warnings.append(f"ipywidgets {ipywidgets} is older than {MIN_IPYWIDGETS}: JupyterLab 4 shows its "
                                f"widgets as text; python -m pip install 'ipywidgets>={MIN_IPYWIDGETS}'")
    if lab is None:
        finding.warnings.append("JupyterLab is not installed here: python -m pip install jupyterlab, or open the "
                                "notebooks in VS Code (Jupyter extension) or Colab")
    elif extension is None:
        finding.warnings.append("JupyterLab has no widget extension, so widgets show as text such as VBox(...): "
                                "python -m pip install jupyterlab_widgets in JupyterLab's environment, then restart it")
    return finding


def _ffmpeg_exe() -> str:
    """The ffmpeg binary imageio-ffmpeg uses (its own, or $IMAGEIO_FFMPEG_EXE); raises when there is none."""
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def probe_ffmpeg(context: Context) -> Finding:
    version = _distribution_version("imageio-ffmpeg")
    finding = Finding("ffmpeg", f"imageio-ffmpeg {version}" if version else "no imageio-ffmpeg")
    try:
        exe = _ffmpeg_exe()
    except ImportError as error:
        finding.fact += ", cannot be imported"
        finding.errors.append(f"imageio-ffmpeg cannot be imported ({error}): lesson 05 needs it to read video files; "
                              "python -m pip install imageio-ffmpeg")
        return finding
    except Exception as error:  # noqa: BLE001 -- RuntimeError "No ffmpeg exe could be found", or an OS error
        why = f"{type(error).__name__}: {error}".splitlines()[0]
        finding.fact += ", no ffmpeg binary"
        finding.warnings.append(f"no ffmpeg binary ({why}): MP4 files cannot be read or written, GIFs and the "
                                "lessons' animations still work; python -m pip install --force-reinstall "
                                "imageio-ffmpeg, or install ffmpeg and set IMAGEIO_FFMPEG_EXE to it")
        return finding
    finding.fact += f": {exe}"
    if not os.access(exe, os.X_OK):
        finding.warnings.append(f"{exe} is not executable: MP4 files cannot be read or written (GIFs work); "
                                f"chmod +x it, or set IMAGEIO_FFMPEG_EXE to another ffmpeg")
    return finding


@dataclass(frozen=True)
class ShippedModel:
    """A model the course ships: its recipe, the other network trained on it (``parts``; None: the recipe's
    own model), the options that make the recipe from its task and model, and the lessons that load it."""

    recipe: Recipe
    parts: object | None  # course_lib.workshop.zoo.Parts
    options: dict
    lessons: str

    @property
    def steps(self) -> int:
        from course_lib.workshop import zoo

        return zoo.default_steps(self.recipe, self.parts)

    @property
    def name(self) -> str:
        from course_lib.workshop import zoo

        return zoo.file_stem(self.recipe, parts=self.parts)

    def path(self, folder) -> Path:
        from course_lib.workshop import zoo

        return zoo.checkpoint_path(self.recipe, folder=folder, parts=self.parts)

    def train_command(self) -> str:
        """What trains it again from the course's root."""
        if self.parts is not None:
            from course_lib.workshop import zoo

            call = zoo.training_call(self.recipe, self.steps, self.parts)
            return ('python -c "from course_lib.workshop.predictor import train_or_load_frame_conditional; '
                    f'from course_lib.workshop.recipes import get_recipe; {call}"')
        return (f"python -m course_lib train --task {self.recipe.task} --model {self.recipe.model_name} "
                f"--preset {SHIPPED_PRESET}" + "".join(f" --{name} {value}" for name, value in self.options.items()))


def _check_shipped(path: Path, model: ShippedModel) -> str | None:
    """None if ``path`` is an export of exactly ``model`` (its header: format, recipe, key, finished), else why not."""
    from course_lib.workshop import shipped, zoo
    from course_lib.workshop.recipes import Recipe

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the weights' finiteness check: milliseconds on 1 thread, can stall on 2 of a busy CPU
    try:
        state = shipped.read_export(path)
        stored = Recipe.from_info(state["recipe"])
    except (ValueError, OSError) as error:
        return " ".join(str(error).split())
    finally:
        torch.set_num_threads(threads)
    key = zoo.file_key(model.recipe, model.steps, model.parts)
    if state["recipe_key"] != key or stored != model.recipe:
        return f"it was made by another recipe (key {state['recipe_key']}) than today's ({key})"
    if int(state["step"]) < int(state["target_steps"]):
        return f"its training stopped at step {state['step']} of {state['target_steps']}"
    return None


def shipped_models() -> list[ShippedModel]:
    """The models that ship with the course (SHIPPED, then SHIPPED_PREDICTORS), as today's recipes make them."""
    from course_lib.workshop.predictor import frame_conditional_parts
    from course_lib.workshop.recipes import get_recipe

    found = []
    for (task, model, objective, steps), lessons in SHIPPED.items():
        options = {name: value for name, value in (("objective", objective), ("steps", steps)) if value is not None}
        found.append(ShippedModel(get_recipe(task, SHIPPED_PRESET, model, **options), None, options, lessons))
    for (task, context_noise), lessons in SHIPPED_PREDICTORS.items():
        recipe = get_recipe(task, SHIPPED_PRESET)
        found.append(ShippedModel(recipe, frame_conditional_parts(recipe, context_noise),
                                  {"context_noise": context_noise}, lessons))
    return found


def probe_weights(context: Context) -> Finding:
    from course_lib.workshop import shipped, zoo

    used = context.preset is None or context.preset.name == SHIPPED_PRESET
    facts, expected = [], set()
    finding = Finding("weights", "")
    for model in shipped_models():
        path, own = model.path(shipped.SHIPPED_FOLDER), model.path(context.root / zoo.DEFAULT_FOLDER)
        expected.add(path.name)
        if not path.is_file():
            if own.is_file():
                facts.append(f"{model.name} trained here ({model.lessons})")
                continue
            facts.append(f"{model.name} missing")
            (finding.errors if used else finding.warnings).append(
                f"the shipped {path.name} is missing, so {model.lessons} would train it first: reinstall the course "
                f"(python -m pip install -e .), or train it now from {context.root}: {model.train_command()}")
            continue
        problem = _check_shipped(path, model)
        if problem:
            facts.append(f"{model.name} unusable")
            finding.errors.append(f"the shipped {path.name} cannot be used: {problem.rstrip('.')}; reinstall the "
                                  "course, or delete it and let the lessons train the model")
        else:
            facts.append(f"{model.name} ({model.lessons})")
    for extra in sorted(p.name for p in shipped.SHIPPED_FOLDER.glob("*.pt") if p.name not in expected):
        finding.warnings.append(f"{extra} in {shipped.SHIPPED_FOLDER} is loaded by no lesson (no recipe of today "
                                "has its name): delete it")
    finding.fact = "shipped: " + "; ".join(facts)
    if not used:
        finding.fact += f" -- for the {SHIPPED_PRESET} preset; {context.preset.name} trains its own models"
    return finding


def _disk_free(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def _existing(folder: Path) -> Path:
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def probe_disk(context: Context) -> Finding:
    from course_lib.workshop.zoo import DEFAULT_FOLDER

    folder = context.root / DEFAULT_FOLDER
    there = _existing(folder)
    free = _disk_free(there)
    saved = len(list(folder.glob("*.pt"))) if folder.is_dir() else 0
    finding = Finding("disk", f"{format_bytes(free)} free for {folder} ({saved} checkpoint{'s' * (saved != 1)} there)")
    if not there.is_dir():
        finding.errors.append(f"{folder} cannot be created: {there} is a file; move it away")
        return finding
    try:
        with tempfile.TemporaryFile(dir=there):
            pass
    except OSError as error:
        finding.errors.append(f"cannot write in {there} ({error.strerror or error}), so trained models cannot be "
                              "saved: run the course from a folder you can write to")
    if free < NO_DISK:
        finding.errors.append(f"only {format_bytes(free)} free on the disk of {folder}: a training checkpoint may not "
                              "be saved; free some space")
    elif free < LOW_DISK:
        finding.warnings.append(f"only {format_bytes(free)} free on the disk of {folder}: the cpu preset's checkpoints "
                                "of all lessons take a few hundred MB; free some space")
    return finding


def _seconds(seconds: float) -> str:
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def probe_lesson_times(context: Context) -> Finding:
    name = context.preset.name if context.preset else SHIPPED_PRESET
    path = context.root / LESSON_TIMES.format(preset=name)
    measure = f"python -m course_lib notebooks time --preset {name} measures them"
    if not path.is_file():
        return Finding("lessons", f"time per lesson in the {name} preset: not measured yet ({measure})")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        lessons = [(entry["lesson"][:2], float(entry["seconds"]), entry.get("error")) for entry in record["lessons"]]
        where = f"{record['machine']['cpu_count']} cores, {record['threads']} threads"
    except (OSError, ValueError, KeyError, TypeError) as error:
        return Finding("lessons", f"time per lesson in the {name} preset: unreadable record",
                       warnings=[f"{path} cannot be read ({type(error).__name__}: {error}); {measure} again"])
    times = " · ".join(f"{number} {_seconds(seconds)}" + (" (failed)" if error else "")
                       for number, seconds, error in lessons)
    total = sum(seconds for _, seconds, _ in lessons)
    finding = Finding("lessons", f"run time in the {name} preset ({where}): {times}; total {_seconds(total)}")
    failed = [number for number, _, error in lessons if error]
    if failed:
        finding.warnings.append(f"lesson{'s' * (len(failed) > 1)} {', '.join(failed)} failed when timed (see {path}); "
                                f"run {'them' if len(failed) > 1 else 'it'} once before the workshop")
    return finding


PROBES: tuple[Callable[[Context], Finding], ...] = (
    probe_python, probe_torch, probe_threads, probe_memory, probe_preset, probe_widgets, probe_ffmpeg, probe_weights,
    probe_disk, probe_lesson_times)


def examine(root: Path | None = None) -> list[Finding]:
    """Every probe's finding; a probe that fails unforeseen gives a warning naming the failure."""
    context = Context(course_root() if root is None else Path(root), *preset_and_device())
    findings = []
    for probe in PROBES:
        topic = probe.__name__.removeprefix("probe_").replace("_", " ")
        try:
            findings.append(probe(context))
        except Exception as error:  # noqa: BLE001 -- a check of the machine must not crash on the machine
            why = f"{type(error).__name__}: {error}".splitlines()[0] if str(error) else type(error).__name__
            findings.append(Finding(topic, "could not be checked", warnings=[f"the check itself failed ({why})"]))
    return findings


def run(root: Path | None = None, prog: str = "python -m course_lib doctor") -> int:
    """Print the report of :func:`examine` (facts, warnings, errors on stderr, a verdict); 1 if any error, else 0."""
    findings = examine(root)
    width = max(len(finding.topic) for finding in findings) + 2
    for finding in findings:
        print(f"{finding.topic:<{width}}{finding.fact}")
    warnings = [f"{finding.topic}: {line}" for finding in findings for line in finding.warnings]
    errors = [f"{finding.topic}: {line}" for finding in findings for line in finding.errors]
    if warnings:
        print()
    for line in warnings:
        print(f"warning: {' '.join(line.split())}")
    sys.stdout.flush()
    for line in errors:
        print(f"{prog}: error: {' '.join(line.split())}", file=sys.stderr, flush=True)
    warned = f"; {len(warnings)} warning{'s' * (len(warnings) != 1)} above" if warnings else ""
    if errors:
        many = len(errors) != 1
        print(f"not ready: {len(errors)} problem{'s' * many} would stop a lesson (see the error line{'s' * many})"
              f"{warned}")
        return 1
    print(f"ready: nothing here will stop a lesson{warned}")
    return 0
