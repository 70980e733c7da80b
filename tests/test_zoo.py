"""Train or load: trains once, loads after; resumes an interrupted run exactly; refuses foreign files."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from course_lib.workshop import zoo
from course_lib.config import Preset, get_preset
from course_lib.workshop.recipes import get_recipe
from course_lib.training import Trainer, TrainConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def toy_recipe(**overrides):
    preset = get_preset("smoke").replace(num_diffusion_steps=50, toy_batch_size=32)
    return get_recipe("toy-moons", preset, steps=6, **overrides)


def weights(trainer):
    return [p.detach().clone() for p in trainer.model.state_dict().values()]


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("preset", [get_preset("smoke"), get_preset("smoke").replace(precision="bf16", toy_batch_size=8),
                                    get_preset("smoke").replace(name="mine")])
def test_the_recorded_command_rebuilds_the_same_recipe(preset):
    """The training record's command names a changed preset by its changes, so running it trains the same recipe."""
    recipe = get_recipe("toy-moons", preset, lr=3e-3)
    command = zoo.training_call(recipe, 7)
    rebuilt, steps = eval(command, {"train_or_load": lambda r, steps: (r, steps), "get_recipe": get_recipe,
                                    "get_preset": get_preset, "Preset": Preset})
    assert rebuilt.key(steps) == recipe.key(7) and rebuilt.preset == recipe.preset


def test_train_or_load_trains_once_then_loads(tmp_path, monkeypatch):
    recipe = toy_recipe()
    trained = zoo.train_or_load(recipe, folder=tmp_path, progress=False)
    path = tmp_path / f"toy-moons-mlp-smoke-{recipe.key()}.pt"
    assert path.is_file() and trained.step == 6
    record = json.loads(zoo.sidecar_path(path).read_text())
    assert record["steps"] == 6 and record["finished"] and record["key"] == recipe.key()
    assert record["torch"] == torch.__version__ and record["machine"]["cpu_count"] >= 1
    assert record["wall_clock_seconds"] > 0 and record["command"].startswith(
        "train_or_load(get_recipe('toy-moons', get_preset('smoke').replace(num_diffusion_steps=50, toy_batch_size=32), 'mlp'")

    def no_training(self):
        raise AssertionError("train_or_load trained although the checkpoint was there")

    monkeypatch.setattr(Trainer, "train_step", no_training)
    loaded = zoo.train_or_load(toy_recipe(), folder=tmp_path, progress=False)
    assert loaded.step == 6 and same(weights(loaded), weights(trained))
    assert same(loaded.ema_model.state_dict().values(), trained.ema_model.state_dict().values())


HOLD_THE_LOCK = """
import shutil, sys
from course_lib._files import exclusive_lock
with exclusive_lock(sys.argv[1]):
    print("locked", flush=True)
    sys.stdin.readline()  # "training" until told to finish
    shutil.copy(sys.argv[2], sys.argv[1])
"""


def test_a_process_that_asks_while_another_trains_waits_then_loads_its_file(tmp_path, monkeypatch, capsys):
    recipe = toy_recipe()
    made_elsewhere = zoo.train_or_load(recipe, folder=tmp_path / "elsewhere", progress=False)
    path = zoo.checkpoint_path(recipe, folder=tmp_path / "mine")
    other = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(path),
                              str(zoo.checkpoint_path(recipe, folder=tmp_path / "elsewhere"))],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "locked"

        def no_training(self):
            raise AssertionError("trained although another process was making the file")

        monkeypatch.setattr(Trainer, "train_step", no_training)
        result = {}
        asking = threading.Thread(target=lambda: result.update(
            trainer=zoo.train_or_load(recipe, folder=tmp_path / "mine", progress=False)))
        asking.start()
        said = ""
        for _ in range(300):
            said += capsys.readouterr().out
            if "waiting" in said:
                break
            time.sleep(0.1)
        assert f"waiting: another process is training {path.name}" in said and asking.is_alive()
        other.stdin.write("done\n")
        other.stdin.flush()
        asking.join(60)
        assert same(weights(result["trainer"]), weights(made_elsewhere)) and result["trainer"].step == 6
    finally:
        other.kill()
        other.wait()


def test_a_folder_that_cannot_be_written_is_an_error_before_any_training(tmp_path, monkeypatch):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")

    def no_training(self):
        raise AssertionError("trained into a folder that cannot hold the file")

    monkeypatch.setattr(Trainer, "train_step", no_training)
    with pytest.raises(OSError, match=r"cannot write .*notes\.txt.*choose a folder you can write to"):
        zoo.train_or_load(toy_recipe(), folder=a_file / "runs", progress=False)
    assert a_file.read_text() == "mine"


def test_other_steps_or_seed_are_another_file(tmp_path):
    recipe = toy_recipe()
    zoo.train_or_load(recipe, steps=2, folder=tmp_path, progress=False)
    zoo.train_or_load(recipe.replace(seed=1), steps=2, folder=tmp_path, progress=False)
    names = sorted(p.name for p in tmp_path.glob("*.pt"))
    assert names == sorted([f"{recipe.name(2)}.pt", f"{recipe.replace(seed=1).name(2)}.pt"]) and len(set(names)) == 2


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, monkeypatch):
    straight = zoo.train(toy_recipe(), tmp_path / "straight.pt", progress=False)

    original = Trainer.train_step

    def interrupted_in_step_5(self):
        if self.step == 4:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while the step runs: it finishes, then training stops
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", interrupted_in_step_5)
    with pytest.raises(zoo.TrainingStopped):
        zoo.train_or_load(toy_recipe(), folder=tmp_path, progress=False)
    path = zoo.checkpoint_path(toy_recipe(), folder=tmp_path)
    assert torch.load(path, weights_only=True)["step"] == 5  # saved at the step boundary
    assert not json.loads(zoo.sidecar_path(path).read_text())["finished"]
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = zoo.train_or_load(toy_recipe(), folder=tmp_path, progress=False)
    assert resumed.step == 6 and same(weights(resumed), weights(straight))
    assert resumed.history["loss"] == pytest.approx(straight.history["loss"])


def test_a_second_ctrl_c_stops_at_once_and_saves_nothing_mid_step(tmp_path, monkeypatch):
    original = Trainer.train_step

    def twice_in_step_3(self):
        if self.step == 2:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)  # the second one raises at once
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", twice_in_step_3)
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN under a shell's background job
    with pytest.raises(KeyboardInterrupt) as stop:
        zoo.train(toy_recipe(), tmp_path / "run.pt", progress=False, save_every=1e9)
    assert not isinstance(stop.value, zoo.TrainingStopped) and not (tmp_path / "run.pt").exists()
    assert signal.getsignal(signal.SIGINT) is before  # the handlers are put back


def test_a_time_budget_stops_training_and_a_second_call_continues(tmp_path):
    recipe = toy_recipe()
    path = tmp_path / "budget.pt"
    stopped = zoo.train(recipe, path, minutes=1e-9, progress=False)  # spent before the first step
    assert stopped.step == 0 and torch.load(path, weights_only=True)["step"] == 0
    assert not json.loads(zoo.sidecar_path(path).read_text())["finished"]
    finished = zoo.train(recipe, path, progress=False)
    assert finished.step == recipe.steps
    assert same(weights(finished), weights(zoo.train(recipe, tmp_path / "straight.pt", progress=False)))


def test_a_corrupted_checkpoint_is_an_error_and_is_left_alone(tmp_path):
    recipe = toy_recipe()
    path = zoo.checkpoint_path(recipe, folder=tmp_path)
    path.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ValueError, match=rf"checkpoint {path}: cannot be read"):
        zoo.train_or_load(recipe, folder=tmp_path, progress=False)
    assert path.read_bytes() == b"not a checkpoint at all"
    retrained = zoo.train_or_load(recipe, folder=tmp_path, retrain=True, progress=False)  # asked for explicitly
    assert retrained.step == recipe.steps and torch.load(path, weights_only=True)["step"] == recipe.steps


def test_a_checkpoint_of_another_recipe_is_refused(tmp_path):
    recipe = toy_recipe()
    other = zoo.train(toy_recipe(lr=1e-4), tmp_path / "other.pt", progress=False)
    assert other.step == recipe.steps
    path = zoo.checkpoint_path(recipe, folder=tmp_path)
    (tmp_path / "other.pt").rename(path)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"trained for another recipe \(lr: 0.0001 in the file, 0.001 here\)"):
        zoo.train_or_load(recipe, folder=tmp_path, progress=False)
    with pytest.raises(ValueError, match=r"another recipe"):
        zoo.train(recipe, path, progress=False)
    assert path.read_bytes() == before


def test_a_preset_field_the_task_never_reads_does_not_make_another_recipe(tmp_path, monkeypatch):
    """The key ignores the image width of a toy task; so does the check of a stored recipe (a course update
    that narrows the smoke U-Net must not orphan a toy checkpoint); a field the task reads is named."""
    recipe = toy_recipe()
    zoo.train_or_load(recipe, folder=tmp_path, progress=False)
    wider = get_recipe("toy-moons", recipe.preset.replace(image_base_channels=64), steps=6)
    assert wider.key() == recipe.key() and wider.info()["preset"] != recipe.info()["preset"]
    monkeypatch.setattr(Trainer, "train_step", lambda self: pytest.fail("trained although the checkpoint was there"))
    assert zoo.train_or_load(wider, folder=tmp_path, progress=False).step == 6
    path = zoo.checkpoint_path(recipe, folder=tmp_path)
    shorter_chain = get_recipe("toy-moons", recipe.preset.replace(num_diffusion_steps=40), steps=6)
    assert shorter_chain.key() != recipe.key()
    with pytest.raises(ValueError, match=r"another recipe \(preset.num_diffusion_steps: 50 in the file, 40 here\)"):
        zoo.train(shorter_chain, path, progress=False)


def test_a_plain_trainer_checkpoint_has_no_recipe(tmp_path):
    recipe = toy_recipe()
    plain = Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch, TrainConfig(steps=1, progress=False), "cpu")
    plain.fit()
    plain.save(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match=r"plain.pt: expected a checkpoint written by course_lib.workshop.zoo"):
        zoo.load_checkpoint(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match=r"plain.pt: expected a checkpoint of recipe toy-moons-mlp-smoke-.*without one"):
        zoo.train(recipe, tmp_path / "plain.pt", progress=False)
    with pytest.raises(FileNotFoundError, match=r"missing.pt: no such file"):
        zoo.load_checkpoint(tmp_path / "missing.pt")


def test_load_checkpoint_rebuilds_recipe_and_model(tmp_path, monkeypatch):
    preset = get_preset("smoke").replace(num_diffusion_steps=50, video_size=16, video_frames=3, video_base_channels=8,
                                         video_batch_size=2, sample_steps=2)
    recipe = get_recipe("video-shapes", preset, steps=2, objective="v")
    trained = zoo.train(recipe, tmp_path / "video.pt", progress=False)
    load, reads = torch.load, []
    monkeypatch.setattr(torch, "load", lambda file, **kwargs: reads.append(str(getattr(file, "name", file))) or load(file, **kwargs))
    loaded_recipe, loaded = zoo.load_checkpoint(tmp_path / "video.pt")
    assert reads == [str(tmp_path / "video.pt")]  # recipe, weights and state from one read
    monkeypatch.undo()
    assert loaded_recipe == recipe and loaded_recipe.key() == recipe.key()
    g = torch.Generator
    assert torch.equal(recipe.sample(trained.ema_model, 2, generator=g().manual_seed(0)),
                       loaded_recipe.sample(loaded.ema_model, 2, generator=g().manual_seed(0)))


def test_a_cpu_budget_stops_training_and_without_a_path_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = toy_recipe()
    spent = zoo.train(recipe, None, steps=5, progress=False, cpu_minutes=0.0)
    assert spent.step == 0 and list(tmp_path.iterdir()) == []
    roomy = zoo.train(recipe, None, progress=False, cpu_minutes=60.0)  # the step count ends it first
    saved = zoo.train(recipe, tmp_path / "toy.pt", progress=False)
    assert roomy.step == saved.step == 6 and same(weights(roomy), weights(saved))


def shuffled_parts(recipe) -> zoo.Parts:
    """The recipe's own network and loss, trained on its batches with the rows reversed (other data)."""
    return zoo.Parts("mlp-reversed", recipe.build_model, recipe.loss_fn, steps=4, described={"data": "reversed"},
                     make_batch=lambda g: recipe.make_batch(g).flip(0) * -1)


def test_parts_train_another_model_on_the_recipe_into_a_file_of_their_own(tmp_path, monkeypatch):
    recipe = toy_recipe()
    parts = shuffled_parts(recipe)
    path = zoo.checkpoint_path(recipe, folder=tmp_path, parts=parts)
    assert path.name == f"toy-moons-mlp-reversed-smoke-{parts.key(recipe, 4)}.pt" and path != zoo.checkpoint_path(
        recipe, 4, tmp_path)
    trained = zoo.train_or_load(recipe, folder=tmp_path, progress=False, parts=parts)
    own = zoo.train_or_load(recipe, steps=4, folder=tmp_path, progress=False)
    assert trained.step == own.step == 4 and path.is_file() and not same(weights(trained), weights(own))
    record = json.loads(zoo.sidecar_path(path).read_text())
    assert record["parts"] == {"name": "mlp-reversed", "data": "reversed"} and record["key"] == parts.key(recipe, 4)
    monkeypatch.setattr(Trainer, "fit", lambda *a, **k: pytest.fail("trained although the file was there"))
    again = zoo.train_or_load(recipe, folder=tmp_path, progress=False, parts=parts)
    assert same(weights(again), weights(trained))
    assert same(weights(zoo.load(recipe, path, parts=parts)), weights(trained))
    # the recipe's own model and the parts never pass for each other
    with pytest.raises(ValueError, match=r"expected a checkpoint of a recipe's own model, got one of the 'mlp-reversed'"):
        zoo.load_checkpoint(path)
    with pytest.raises(ValueError, match=r"expected a checkpoint of recipe .*, got one of the 'mlp-reversed' network"):
        zoo.load(recipe, path)
    with pytest.raises(ValueError, match=r"expected a checkpoint of the 'mlp-reversed' network .*recipe's own model"):
        zoo.load(recipe, zoo.checkpoint_path(recipe, 4, tmp_path), parts=parts)


def test_bad_arguments_name_themselves(tmp_path):
    with pytest.raises(ValueError, match=r"recipe: expected a Recipe \(see get_recipe\), got 'str'"):
        zoo.train_or_load("toy-moons", folder=tmp_path)
    with pytest.raises(ValueError, match=r"steps: expected a positive int, got 0"):
        zoo.train_or_load(toy_recipe(), steps=0, folder=tmp_path)
    with pytest.raises(ValueError, match=r"minutes: expected a number in"):
        zoo.train(toy_recipe(), tmp_path / "x.pt", minutes=-1)
    with pytest.raises(ValueError, match=r"cpu_minutes: expected a number in"):
        zoo.train(toy_recipe(), tmp_path / "x.pt", cpu_minutes=-1)
    with pytest.raises(ValueError, match=r"parts: expected None \(the recipe's own model\) or a course_lib.workshop.zoo.Parts"):
        zoo.train_or_load(toy_recipe(), folder=tmp_path, parts="framecond")


def test_save_every_counts_seconds_of_wall_clock_time_not_steps(tmp_path, monkeypatch):
    """``save_every`` is seconds everywhere (TrainConfig.checkpoint_every counts steps): on a clock that
    moves 10 s per reading, save_every=25 saves after steps 3 and 6 (and at the end), not every 25 steps."""
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr(zoo, "time", type("Clock", (), {"perf_counter": staticmethod(lambda: next(clock)), "process_time": staticmethod(lambda: 0.0)}))
    saved_at = []
    original = zoo.save_checkpoint
    monkeypatch.setattr(zoo, "save_checkpoint", lambda trainer, *args: (saved_at.append(trainer.step),
                                                                         original(trainer, *args))[1])
    zoo.train(toy_recipe(), tmp_path / "toy.pt", steps=7, progress=False, save_every=25)
    assert saved_at == [3, 6, 7]
