"""The shipped checkpoints draw exactly the samples they drew before the library's redesign.

`tests/fixtures/golden/shipped_samples.pt` holds, for each shipped file, 4 samples (DDIM-5, η = 1 -- or,
for a flow-matching model, Heun with 3 steps --, generator seeded 123, guidance 3 for the digits; one
thread; for an autoencoder, which does not sample, its reconstructions of 4 real clips drawn with seed
123) stored before the modules moved, or when the file was first shipped. A change
anywhere between the lesson's `recipe.sample` and the network -- the schedule, the sampler, the
guidance, the model's layers, the loading of the float16 export -- shows here as a changed bit.
"""
from pathlib import Path

import pytest
import torch

from course_lib.workshop import zoo

GOLDEN = Path(__file__).parent / "fixtures" / "golden" / "shipped_samples.pt"
SHIPPED = sorted((Path(zoo.__file__).resolve().parent / "pretrained").glob("*.pt"))


def golden_samples(recipe, model) -> torch.Tensor:
    """The 4 samples stored for a shipped file (call with one thread)."""
    if recipe.model_name == "autoencoder":
        return model.reconstruct(recipe.real_examples(4, seed=123))
    guidance = {"guidance_scale": 3.0} if recipe.num_classes else {}
    solver = {"sampler": "heun", "steps": 3} if recipe.objective == "flow" else {"sampler": "ddim", "steps": 5, "eta": 1.0}
    return recipe.sample(model, 4, generator=torch.Generator().manual_seed(123), **solver, **guidance)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.stem)
def test_a_shipped_checkpoint_draws_the_stored_samples_bit_for_bit(path):
    expected = torch.load(GOLDEN, weights_only=True)[path.stem]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        recipe, trainer = zoo.load_checkpoint(path, progress=False)
        samples = golden_samples(recipe, trainer.ema_model)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(samples, expected)


def test_every_shipped_checkpoint_has_stored_samples():
    assert {path.stem for path in SHIPPED} == set(torch.load(GOLDEN, weights_only=True))
