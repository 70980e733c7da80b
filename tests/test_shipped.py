"""Shipped checkpoints: export keeps the EMA weights small, train_or_load finds them, the shipped files match today's recipes."""
import json
from pathlib import Path

import pytest
import torch

from course_lib.workshop import shipped, zoo
from course_lib.workshop.cli import main
from course_lib.workshop.doctor import shipped_models
from course_lib.config import get_preset
from course_lib.workshop.recipes import Recipe, get_recipe
from course_lib.training import Trainer


def video_recipe(**overrides):
    preset = get_preset("smoke").replace(num_diffusion_steps=50, sample_steps=2, video_size=16, video_frames=3,
                                         video_base_channels=8, video_batch_size=2)
    return get_recipe("video-shapes", preset, steps=3, **overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(recipe, checkpoint path, trainer) of a 3-step video model."""
    folder = tmp_path_factory.mktemp("trained")
    recipe = video_recipe()
    trainer = zoo.train_or_load(recipe, folder=folder, progress=False, shipped_folder=None)
    return recipe, zoo.checkpoint_path(recipe, folder=folder), trainer


def test_an_export_keeps_the_ema_weights_in_float16_at_a_fraction_of_the_size(trained, tmp_path):
    recipe, path, trainer = trained
    out = shipped.export_checkpoint(path, folder=tmp_path, command="python -m course_lib export --checkpoint x")
    assert out == tmp_path / f"{recipe.name()}.pt"
    assert out.stat().st_size < 0.3 * path.stat().st_size  # no raw weights, no AdamW moments, half the bytes
    state = shipped.read_export(out)
    assert {value.dtype for value in state["ema_model"].values() if value.is_floating_point()} == {torch.float16}
    assert state["recipe_key"] == recipe.key() and state["step"] == 3 and len(state["history"]["loss"]) == 3
    record = json.loads(zoo.sidecar_path(out).read_text())
    assert record["wall_clock_seconds"] > 0 and "get_recipe('video-shapes'" in record["command"]  # the training record
    assert record["export"]["command"] == "python -m course_lib export --checkpoint x"
    assert record["export"]["bytes"] == out.stat().st_size

    loaded_recipe, loaded = zoo.load_checkpoint(out)
    assert loaded_recipe == recipe and loaded.step == 3 and loaded.seconds == pytest.approx(trainer.seconds)
    x = torch.randn(2, 3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    t = torch.tensor([5, 40])
    with torch.no_grad():
        original, exported = trainer.ema_model(x, t), loaded.ema_model(x, t)
    assert not torch.equal(original, exported)  # float16 rounding is real ...
    assert (original - exported).abs().max() <= 2e-3 * original.abs().max()  # ... and tiny


def test_train_or_load_loads_a_shipped_export_without_training(trained, tmp_path, monkeypatch, capsys):
    recipe, path, trainer = trained
    shipped_folder = tmp_path / "shipped"
    shipped.export_checkpoint(path, folder=shipped_folder)

    def no_training(self):
        raise AssertionError("train_or_load trained although a shipped checkpoint was there")

    with monkeypatch.context() as patch:
        patch.setattr(Trainer, "train_step", no_training)
        loaded = zoo.train_or_load(recipe, folder=tmp_path / "mine", progress=False, shipped_folder=shipped_folder)
    assert loaded.step == 3 and "loaded the course's trained" in capsys.readouterr().out
    assert not (tmp_path / "mine").exists()  # nothing written: the learner's folder stays empty
    close = [torch.allclose(a, b, atol=1e-3) for a, b in zip(loaded.ema_model.parameters(), trainer.ema_model.parameters())]
    assert all(close)
    # another recipe (other seed) is not this file: it trains
    other = zoo.train_or_load(recipe.replace(seed=1), folder=tmp_path / "mine", progress=False,
                              shipped_folder=shipped_folder)
    assert (tmp_path / "mine" / f"{recipe.replace(seed=1).name()}.pt").is_file() and other.step == 3
    # retrain=True and shipped_folder=None train here
    for kwargs in ({"retrain": True}, {"shipped_folder": None}):
        folder = tmp_path / f"again-{len(kwargs)}-{next(iter(kwargs))}"
        zoo.train_or_load(recipe, folder=folder, progress=False, **({"shipped_folder": shipped_folder} | kwargs))
        assert zoo.checkpoint_path(recipe, folder=folder).is_file()


def test_read_any_reads_a_checkpoint_or_an_export_once_and_names_a_foreign_file(trained, tmp_path, monkeypatch):
    recipe, path, _ = trained
    out = shipped.export_checkpoint(path, folder=tmp_path)
    reads = []
    monkeypatch.setattr(shipped, "load_file", lambda file: reads.append(file) or torch.load(file, weights_only=True))
    assert shipped.read_any(path)["optimizer"] and shipped.read_any(out)["format"] == shipped.EXPORT_FORMAT
    assert reads == [path, out]  # one read each, the export's included
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(1)}, foreign)
    with pytest.raises(ValueError, match="expected a course_lib training checkpoint"):
        shipped.read_any(foreign)


def test_a_renamed_export_is_refused(trained, tmp_path):
    recipe, path, _ = trained
    other = recipe.replace(seed=7)
    shipped.export_checkpoint(path, out=zoo.checkpoint_path(other, folder=tmp_path))
    with pytest.raises(ValueError, match="trained for another recipe"):
        zoo.train_or_load(other, folder=tmp_path / "mine", progress=False, shipped_folder=tmp_path)


def test_an_unfinished_or_foreign_checkpoint_is_not_exported(tmp_path):
    recipe = video_recipe()
    unfinished = zoo.train(recipe, tmp_path / "half.pt", steps=3, minutes=0.0, progress=False)
    assert unfinished.step == 0
    with pytest.raises(ValueError, match=r"checkpoint: expected a finished training run .*0 of 3 steps"):
        shipped.export_checkpoint(tmp_path / "half.pt", folder=tmp_path)
    plain = Trainer(recipe.build_model(), recipe.loss_fn, recipe.make_batch, recipe.train_config(1, progress=False))
    plain.save(tmp_path / "plain.pt")
    with pytest.raises(ValueError, match="checkpoint: expected a checkpoint written by python -m course_lib train"):
        shipped.export_checkpoint(tmp_path / "plain.pt", folder=tmp_path)
    with pytest.raises(ValueError, match="expected an exported checkpoint"):
        shipped.read_export(tmp_path / "plain.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="junk.pt: cannot be read"):
        shipped.read_export(tmp_path / "junk.pt")
    with pytest.raises(FileNotFoundError, match="no such file"):
        shipped.read_export(tmp_path / "missing.pt")


def test_another_network_on_a_recipe_ships_under_its_own_name_and_loads_only_as_itself(tmp_path, monkeypatch,
                                                                                       capsys):
    recipe = video_recipe()
    parts = zoo.Parts("unet3d-copy", recipe.build_model, recipe.loss_fn, steps=2,  # another network on the recipe
                      described={"copy": True})
    trained = zoo.train_or_load(recipe, folder=tmp_path / "runs", progress=False, parts=parts, shipped_folder=None)
    source = zoo.checkpoint_path(recipe, folder=tmp_path / "runs", parts=parts)
    where = dict(folder=tmp_path / "mine", parts=parts, shipped_folder=tmp_path / "shipped")
    assert zoo.is_trained(recipe, folder=tmp_path / "runs", parts=parts) and not zoo.is_trained(recipe, **where)
    out = shipped.export_checkpoint(source, folder=tmp_path / "shipped")
    assert zoo.is_trained(recipe, **where) and not zoo.is_trained(recipe, **where | {"shipped_folder": None})
    assert not zoo.is_trained(recipe, folder=tmp_path / "mine", shipped_folder=tmp_path / "shipped")  # the recipe's own
    # the name train_or_load looks for
    assert out == zoo.checkpoint_path(recipe, folder=tmp_path / "shipped", parts=parts)
    assert out.name.startswith("video-shapes-unet3d-copy-smoke-") and out.name != f"{recipe.name()}.pt"
    assert shipped.read_export(out)["parts"] == "unet3d-copy"

    monkeypatch.setattr(Trainer, "train_step", lambda self: pytest.fail("trained although the export was there"))
    loaded = zoo.train_or_load(recipe, folder=tmp_path / "mine", progress=False, parts=parts,
                               shipped_folder=tmp_path / "shipped")
    assert "loaded the course's trained video-shapes-unet3d-copy-smoke-" in capsys.readouterr().out
    assert loaded.step == 2 and not (tmp_path / "mine").exists()
    assert all(torch.allclose(a, b, atol=1e-3)
               for a, b in zip(loaded.ema_model.parameters(), trained.ema_model.parameters()))
    # not the recipe's own model: never loaded as it, nor as other parts
    with pytest.raises(ValueError, match="got one of the 'unet3d-copy' network"):
        zoo.load_checkpoint(out)
    with pytest.raises(ValueError, match="expected a checkpoint of recipe .*got one of the 'unet3d-copy' network"):
        zoo.load(recipe, out)
    other = zoo.Parts("unet3d-other", recipe.build_model, recipe.loss_fn, steps=2)
    with pytest.raises(ValueError, match="expected a checkpoint of the 'unet3d-other' network"):
        zoo.load(recipe, out, parts=other)
    same_name = zoo.Parts("unet3d-copy", recipe.build_model, recipe.loss_fn, steps=2, described={"copy": False})
    with pytest.raises(ValueError, match="with key .*trained with other settings"):  # e.g. another context_noise
        zoo.load(recipe, out, parts=same_name)


def test_an_export_cannot_be_resumed(trained, tmp_path):
    recipe, path, _ = trained
    out = shipped.export_checkpoint(path, folder=tmp_path)
    with pytest.raises(ValueError, match="expected a training checkpoint to resume, got an exported one"):
        zoo.train(recipe, out, steps=5, progress=False)


def test_the_export_command_and_sampling_from_its_file(trained, tmp_path, monkeypatch, capsys):
    recipe, path, _ = trained
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "small.pt"
    assert main(["export", "--checkpoint", str(path), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out and zoo.sidecar_path(out).is_file()
    assert main(["sample", "--checkpoint", str(out), "--n", "2", "--out", "clips.gif", "--threads", "1"]) == 0
    assert (tmp_path / "clips.gif").stat().st_size > 0
    capsys.readouterr()
    assert main(["export", "--checkpoint", "missing.pt"]) == 2
    assert "--checkpoint: no such file: missing.pt" in capsys.readouterr().err


SHIPPED = sorted(shipped.SHIPPED_FOLDER.glob("*.pt"))


@pytest.mark.parametrize("path", SHIPPED, ids=[path.name for path in SHIPPED])
def test_every_shipped_checkpoint_is_small_recorded_and_made_by_todays_recipe(path):
    state = shipped.read_export(path)
    stored = Recipe.from_info(state["recipe"])
    kind = (stored.task, stored.model_name, stored.objective, state.get("parts"))
    asked = [model for model in shipped_models()  # the models the lessons ask for (doctor.SHIPPED, SHIPPED_PREDICTORS)
             if (*(getattr(model.recipe, name) for name in ("task", "model_name", "objective")),
                 getattr(model.parts, "name", None)) == kind]
    assert asked, f"{path.name}: no lesson asks for a {' '.join(map(str, kind))} model (doctor.SHIPPED)"
    today = next((model for model in asked if model.path(shipped.SHIPPED_FOLDER) == path), asked[0])
    assert stored == today.recipe and path == today.path(shipped.SHIPPED_FOLDER), \
        f"{path.name} was trained for an older recipe: train and export it again"
    assert state["step"] >= state["target_steps"] == today.steps
    assert path.stat().st_size < 8e6
    record = json.loads(zoo.sidecar_path(path).read_text())
    assert record["wall_clock_seconds"] > 0
    assert record["command"].startswith("python -m course_lib train" if today.parts is None else
                                        "train_or_load_frame_conditional(get_recipe('video-shapes', 'cpu'")
    assert record["export"]["command"].startswith("python -m course_lib export")


def test_the_shipped_files_are_package_data():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"pretrained/*.pt"' in text and '"pretrained/*.json"' in text


def test_an_export_stores_a_checksum_and_a_damaged_one_is_refused(trained, tmp_path):
    from test_checkpoint import flip_one_bit_in_largest_tensor

    from course_lib._files import stored_digest

    recipe, path, trainer = trained
    out = shipped.export_checkpoint(path, out=tmp_path / "small.pt")
    with open(out, "rb") as file:
        assert stored_digest(file) is not None
    assert shipped.read_export(out)["step"] > 0
    flip_one_bit_in_largest_tensor(out)
    with pytest.raises(ValueError, match=r"small\.pt: its contents do not match the checksum"):
        zoo.load_checkpoint(out)


def test_the_shipped_files_load_with_or_without_a_checksum():
    """They were exported before the file checksum: most carry the older checksum of their tensors (checked),
    the two oldest none (they load unverified); tests/test_golden_samples.py checks what they draw."""
    for path in sorted(shipped.SHIPPED_FOLDER.glob("*.pt")):
        assert shipped.read_export(path)["step"] > 0


def test_export_without_out_writes_the_name_train_or_load_looks_for(trained, tmp_path, monkeypatch, capsys):
    recipe, path, _ = trained
    monkeypatch.setattr(shipped, "SHIPPED_FOLDER", tmp_path)
    assert main(["export", "--checkpoint", str(path)]) == 0, capsys.readouterr().err
    assert (tmp_path / f"{recipe.name()}.pt").is_file()
    assert zoo.checkpoint_path(recipe, folder=tmp_path) == tmp_path / f"{recipe.name()}.pt"


def test_training_from_scratch_says_first_how_long_the_courses_own_run_took(trained, tmp_path, monkeypatch, capsys):
    recipe, path, _ = trained
    monkeypatch.setattr(shipped, "SHIPPED_FOLDER", tmp_path / "shipped")
    assert zoo.expected_time(recipe, 3) is None  # nothing shipped: nothing to promise
    out = shipped.export_checkpoint(path, folder=tmp_path / "shipped")
    record = json.loads(zoo.sidecar_path(out).read_text())
    record.update(wall_clock_seconds=1800.0, steps=3)  # as if each step had taken 10 minutes
    zoo.sidecar_path(out).write_text(json.dumps(record))
    assert zoo.expected_time(recipe, 3).startswith("3 steps to train: the course's own run of this model took "
                                                   "about 30 min")
    assert "about 10 min" in zoo.expected_time(recipe, 3, start=2)  # a resumed run: what is left
    zoo.train(recipe, tmp_path / "mine.pt", progress=True)
    assert "the course's own run of this model took about 30 min" in capsys.readouterr().out
    zoo.sidecar_path(out).write_text("{not json")
    assert zoo.expected_time(recipe, 3) is None  # a damaged record promises nothing
