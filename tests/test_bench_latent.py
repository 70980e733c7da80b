"""bench latent: the autoencoder's reconstruction, the dit's and the U-Net's step times and samples, one table."""
import json

import pytest
import torch

from course_lib.models.autoencoder import VideoAutoencoder
from course_lib.workshop.bench.latent import COLUMNS, reconstruction_scores

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_quick_run_writes_one_row_per_model_with_its_numbers(run_bench):
    result = run_bench("latent")
    assert result["code"] == 0
    record = json.loads((result["out"] / "latent-smoke-quick.json").read_text())
    rows = {row["model"].split()[0]: row for row in record["rows"]}
    assert set(rows) == {"autoencoder", "dit", "unet3d"} and tuple(record["columns"]) == COLUMNS
    assert rows["autoencoder"]["PSNR dB"] is not None and rows["autoencoder"]["SSIM"] is not None
    for name in ("dit", "unet3d"):
        assert rows[name]["ms/step"] > 0 and rows[name]["parameters"] > 0 and rows[name]["n"] == 4
        assert 0 <= rows[name]["motion pass"] <= 1
    assert rows["unet3d"]["vs unet3d"] == pytest.approx(1.0)
    assert "| dit (latent) |" in result["text"]


class Identity(VideoAutoencoder):
    def reconstruct(self, video):
        return video


def test_a_perfect_reconstruction_scores_ssim_one_and_an_unbounded_psnr():
    clips = torch.rand(3, 2, 3, 16, 16) * 2 - 1
    psnr, ssim = reconstruction_scores(Identity(base_channels=8), clips)
    assert ssim == pytest.approx(1.0) and psnr > 100
