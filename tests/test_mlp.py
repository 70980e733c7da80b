import pytest
import torch

from course_lib.models.mlp import MLPDenoiser

pytestmark = pytest.mark.usefixtures("one_thread")


def randomise_output_layer(model: MLPDenoiser, seed: int = 0) -> None:
    """The output layer starts at zero; give it weights so that outputs carry information."""
    g = torch.Generator().manual_seed(seed)
    last = model.output[-1]
    with torch.no_grad():
        last.weight.copy_(torch.randn(last.weight.shape, generator=g) * 0.1)


@pytest.mark.parametrize("data_dim", [1, 2, 5])
def test_maps_points_and_timesteps_to_points(data_dim):
    model = MLPDenoiser(data_dim, hidden=32, depth=2, time_dim=16)
    out = model(torch.randn(7, data_dim), torch.randint(0, 1000, (7,)))
    assert out.shape == (7, data_dim)


def test_untrained_output_is_zero_so_an_eps_loss_starts_near_one():
    model = MLPDenoiser(2, hidden=32, depth=2)
    out = model(torch.randn(16, 2), torch.randint(0, 1000, (16,)))
    assert torch.equal(out, torch.zeros(16, 2))


def test_prediction_depends_on_the_timestep_and_on_x():
    torch.manual_seed(0)
    model = MLPDenoiser(2, hidden=32, depth=2)
    randomise_output_layer(model)
    x = torch.randn(4, 2)
    early, late = model(x, torch.full((4,), 10)), model(x, torch.full((4,), 900))
    assert (early - late).abs().max() > 1e-3
    assert (model(x, torch.full((4,), 10)) - model(x + 1, torch.full((4,), 10))).abs().max() > 1e-3


def test_same_seed_same_weights_and_every_parameter_gets_a_gradient():
    torch.manual_seed(3)
    a = MLPDenoiser(2, hidden=32, depth=2)
    torch.manual_seed(3)
    b = MLPDenoiser(2, hidden=32, depth=2)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    randomise_output_layer(a)
    a(torch.randn(8, 2), torch.randint(0, 1000, (8,))).square().sum().backward()
    for name, p in a.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("x_shape, needle", [((8, 3), "(8, 3)"), ((8,), "rank 2"), ((2, 8, 2), "rank 2")])
def test_wrong_input_shape_names_x(x_shape, needle):
    model = MLPDenoiser(2, hidden=16, depth=1)
    with pytest.raises(ValueError, match=r"^x: expected") as info:
        model(torch.randn(x_shape), torch.zeros(x_shape[0], dtype=torch.long))
    assert needle in str(info.value)


def test_timesteps_that_do_not_match_the_batch_name_t():
    model = MLPDenoiser(2, hidden=16, depth=1)
    with pytest.raises(ValueError, match=r"^t: expected one timestep per point"):
        model(torch.randn(8, 2), torch.zeros(5, dtype=torch.long))


@pytest.mark.parametrize("kwargs, name", [
    ({"data_dim": 0}, "data_dim"), ({"data_dim": 2, "hidden": -1}, "hidden"), ({"data_dim": 2, "depth": 0}, "depth"),
    ({"data_dim": 2, "time_dim": 1.5}, "time_dim"), ({"data_dim": 2, "time_dim": 15}, "time_dim"),
])
def test_bad_constructor_arguments_are_named(kwargs, name):
    with pytest.raises(ValueError, match=rf"^{name}: expected"):
        MLPDenoiser(**kwargs)
