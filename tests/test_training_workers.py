"""Batches from DataLoader worker processes: the same tensors as in-process, exact resume, zoo and CLI switches.

Every comparison is bit for bit (torch.equal): the workers draw each batch from the same
(seed, step, shard) generators as the training process would, and the training itself runs in the
training process either way.
"""
import json
import os
import signal

import pytest
import torch

from course_lib import config
from course_lib.workshop import zoo
from course_lib.workshop.cli import main
from course_lib.workshop.recipes import get_recipe
from course_lib.training import Trainer
from course_lib.training.parallel import StepBatches, draw_shard, step_loader

TINY = dict(num_diffusion_steps=50, toy_batch_size=16, toy_train_steps=6)


@pytest.fixture(autouse=True)
def tiny_smoke(monkeypatch, tmp_path):
    """A tiny smoke preset, one thread, working in tmp_path, as a plain process."""
    monkeypatch.setitem(config.PRESETS, "smoke", config.PRESETS["smoke"].replace(**TINY))
    monkeypatch.chdir(tmp_path)
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def toy_recipe(**overrides):
    return get_recipe("toy-moons", "smoke", **overrides)  # its make_batch pickles: workers may be spawned


def trainer(steps=4, **changes) -> Trainer:
    recipe = toy_recipe()
    return Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch,
                   recipe.train_config(steps, progress=False, **changes), "cpu")


def same_state(a: Trainer, b: Trainer) -> bool:
    pairs = [(a.model.state_dict(), b.model.state_dict()), (a.ema_model.state_dict(), b.ema_model.state_dict())]
    return all(torch.equal(x, y) for one, two in pairs for x, y in zip(one.values(), two.values())) \
        and a.history == b.history


def children() -> set[int]:
    """Process ids whose parent is this process (Linux /proc)."""
    mine, found = os.getpid(), set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == mine and fields[0] != "Z":
                found.add(int(entry))
    return found


def test_worker_processes_serve_the_in_process_stream_in_step_order():
    make_batch = get_recipe("video-shapes", config.PRESETS["smoke"].replace(video_size=16, video_frames=3,
                                                                           video_batch_size=2)).make_batch
    rng = torch.get_rng_state()
    loader = iter(step_loader(make_batch, seed=3, shards=[0, 1], start=5, workers=2))
    served = [next(loader) for _ in range(5)]
    del loader
    assert torch.equal(torch.get_rng_state(), rng)  # the loader seeds its workers from its own generator
    assert [step for step, _ in served] == [5, 6, 7, 8, 9]
    for step, batches in served:
        assert len(batches) == 2
        for shard, batch in enumerate(batches):
            assert torch.equal(batch, draw_shard(make_batch, 3, step, shard))
    assert not torch.equal(served[0][1][0], served[0][1][1])  # shards differ: the check can fail
    assert not torch.equal(served[0][1][0], served[1][1][0])  # and steps too


def test_training_with_workers_equals_training_in_process_and_stops_its_workers():
    before = children()
    with_workers = trainer(workers=2, accumulate=2)
    with_workers.fit(steps=1)
    assert len(children() - before) == 2
    with_workers.fit()
    with_workers.close()
    assert children() - before == set()
    in_process = trainer(accumulate=2).fit()
    assert with_workers.config.shards == in_process.config.shards == 2
    assert same_state(with_workers, in_process)
    one_worker = trainer(workers=1).fit()  # workers alone switch to the per-step stream of 1 shard
    assert one_worker.config.shards == 1 and same_state(one_worker, trainer(shards=1).fit())
    assert not same_state(one_worker, in_process)  # the comparison can fail


def test_a_run_with_workers_resumes_bit_for_bit(tmp_path):
    straight = trainer(6, workers=2).fit()
    first = trainer(6, workers=2).fit(steps=3)
    first.save(tmp_path / "half.pt")
    first.close()
    recipe = toy_recipe()
    resumed = Trainer.load(tmp_path / "half.pt", recipe.build_model(), recipe.loss_fn, recipe.make_batch, "cpu").fit()
    resumed.close()
    assert resumed.config.workers == 2 and same_state(resumed, straight)


def test_bad_stream_arguments_are_named():
    with pytest.raises(ValueError, match=r"^workers: expected a positive int, got 0$"):
        step_loader(toy_recipe().make_batch, 0, [0], 0, workers=0)
    with pytest.raises(ValueError, match=r"^shards: expected a non-empty list of shard indices >= 0, got \[\]$"):
        StepBatches(toy_recipe().make_batch, 0, [], 0)
    with pytest.raises(ValueError, match=r"^start: expected an int >= 0 \(the first step\), got -1$"):
        StepBatches(toy_recipe().make_batch, 0, [0], -1)
    with pytest.raises(ValueError, match=r"^make_batch: expected a function make_batch\(generator\), got 'int'$"):
        StepBatches(3, 0, [0], 0)


# --- zoo and CLI: interrupted runs lose nothing -------------------------------------------------------

def interrupt_at(monkeypatch, step: int):
    """Ctrl-C (a real SIGINT) lands while the step after ``step`` runs."""
    original = Trainer.train_step

    def train_step(self):
        if self.step == step:
            os.kill(os.getpid(), signal.SIGINT)
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", train_step)
    return original


def test_zoo_trains_with_accumulation_and_workers_and_an_interrupted_run_resumes_exactly(monkeypatch, tmp_path):
    straight = zoo.train(toy_recipe(), "straight.pt", progress=False, accumulate=2, workers=2)
    record = json.loads(zoo.sidecar_path(tmp_path / "straight.pt").read_text())
    assert (record["shards"], record["accumulate"], record["workers"]) == (2, 2, 2)
    original = interrupt_at(monkeypatch, 3)
    with pytest.raises(zoo.TrainingStopped):
        zoo.train(toy_recipe(), "cut.pt", progress=False, accumulate=2, workers=2)
    assert torch.load(tmp_path / "cut.pt", weights_only=True)["step"] == 4  # the step finished, then saved
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = zoo.train(toy_recipe(), "cut.pt", progress=False)  # no switches: the file's own layout, in-process
    assert resumed.config.shards == 2 and resumed.config.accumulate == 2 and same_state(resumed, straight)


def test_a_carried_stream_run_cannot_be_resumed_by_workers(tmp_path):
    zoo.train(toy_recipe(steps=2), "plain.pt", progress=False)
    with pytest.raises(ValueError, match=r"^workers: expected 0 to resume plain.pt: it was trained on the carried data "
                                         r"stream of one process \(shards 0\).*got 2$"):
        zoo.train(toy_recipe(steps=4), "plain.pt", progress=False, workers=2)
    with pytest.raises(ValueError, match=r"^accumulate: expected a number that splits the batch of 16 examples into 1 "
                                         r"process\(es\) x accumulate equal micro-batches, got 3$"):
        zoo.train(toy_recipe(), "other.pt", progress=False, accumulate=3)


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_train_takes_accumulate_workers_and_channels_last(capsys):
    args = ["train", "--task", "toy-moons", "--preset", "smoke", "--checkpoint", "cli.pt", "--steps", "2"]
    code, out, err = run(args + ["--accumulate", "2", "--workers", "1", "--channels-last"], capsys)
    assert code == 0, err
    assert "Gradient accumulation: each step's batch of 16 is 2 micro-batches of 8, 2 per process." in out
    assert "memory: training needs about" in out and "finished: 2/2 steps" in out
    saved = torch.load("cli.pt", weights_only=True)["config"]
    assert (saved["shards"], saved["accumulate"], saved["workers"], saved["memory_format"]) == \
        (2, 2, 1, "channels_last")
    code, out, err = run(args[:-1] + ["4", "--resume"], capsys)  # resumes the file's layout without the switches
    assert code == 0 and "finished: 4/4 steps" in out, err
    for bad, message in ((["--workers", "-1"], "argument --workers: expected a whole number >= 0, got '-1'"),
                         (["--accumulate", "0"], "argument --accumulate: expected a positive whole number, got '0'"),
                         (["--accumulate", "3"], "accumulate: expected a number that splits the batch of 16")):
        code, out, err = run(args[:5] + ["--checkpoint", "new.pt"] + bad, capsys)
        assert code == 2 and message in err and "Traceback" not in err
