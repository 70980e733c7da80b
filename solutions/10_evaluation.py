# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exercises 10 · Evaluating video models
#
# Write your code where it says `raise NotImplementedError(...)`, then run the check cell below it.
#
# Stuck? `hint("10.1")` gives the idea of an exercise, `hint("10.1", 2)` the formula.

# %%
# Set-up. Where the course is installed this only shows the device and preset. On Colab or a fresh
# machine it first installs the course from $COURSE_SOURCE: a clone (default /content/course, see
# the README, "Run on Colab") or a wheel file.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("course_lib") is None:
    COURSE_SOURCE = os.environ.get("COURSE_SOURCE", "/content/course")
    is_wheel, is_clone = COURSE_SOURCE.endswith(".whl"), os.path.isfile(os.path.join(COURSE_SOURCE, "pyproject.toml"))
    if not (is_wheel and os.path.isfile(COURSE_SOURCE)) and not is_clone:
        raise ModuleNotFoundError(
            f"course_lib is not installed, and COURSE_SOURCE={COURSE_SOURCE!r} is neither a clone of the course "
            f"nor a wheel: run `!git clone <the course repository> {COURSE_SOURCE}` (or set COURSE_SOURCE), then this cell")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", *([] if is_wheel else ["-e"]), COURSE_SOURCE], check=True)
    if is_clone:
        sys.path.insert(0, COURSE_SOURCE)  # importable now, without restarting the kernel
        os.chdir(os.path.join(COURSE_SOURCE, "notebooks"))  # ../checkpoints as in JupyterLab
    importlib.invalidate_caches()
from course_lib.config import describe_environment

print(describe_environment())

# %%
import torch

from course_lib.workshop.checks import hint
from course_lib.workshop.checks.nb10 import check_fid_from_features, check_inception_score, check_psnr

# %% [markdown]
# ## Exercise 10.1 · PSNR from the mean squared error
#
# For two batches of images x, y: (B, C, H, W) and the data range R (max − min of the pixel scale:
# 2 for [−1, 1], 1 for [0, 1]), return one PSNR per image, shape (B,):
#
# $$\mathrm{PSNR} = 10 \log_{10} \frac{R^2}{\mathrm{MSE}}, \qquad \mathrm{MSE} = \text{mean of } (x - y)^2 \text{ over } C, H, W.$$

# %%
def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float) -> torch.Tensor:
    ### BEGIN SOLUTION one MSE per image, then 10 · log10(R² / MSE)
    mse = (x - y).pow(2).flatten(1).mean(dim=1)  # (B,)
    return 10 * torch.log10(data_range**2 / mse)
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_psnr(psnr)

# %% [markdown]
# ## Exercise 10.2 · FID from features
#
# FID (Heusel et al. 2017) and FVD fit a Gaussian N(μ, Σ) to the features of real samples and one
# to the features of generated samples, and report the squared Fréchet distance between them:
#
# $$d^2 = \lVert\mu_1 - \mu_2\rVert^2 + \operatorname{Tr}\big(\Sigma_1 + \Sigma_2 - 2\,(\Sigma_1\Sigma_2)^{1/2}\big).$$
#
# Given two feature sets `features1` (N, F) and `features2` (M, F), return d² (a number): the means,
# the *unbiased* covariances (divide by N − 1, as `torch.cov` does), and the trace of the matrix
# square root. Σ1Σ2 is not symmetric, but √Σ1 Σ2 √Σ1 is (and positive semi-definite) and has the
# same eigenvalues, so Tr((Σ1Σ2)^½) is the sum of the square roots of its eigenvalues; √Σ1 itself is
# V diag(√λ) Vᵀ from `torch.linalg.eigh(Σ1)`. Work in float64; clamp tiny negative eigenvalues to 0.

# %%
def fid_from_features(features1: torch.Tensor, features2: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION Gaussian fits; √Σ1 by eigh; the eigenvalues of √Σ1 Σ2 √Σ1 give Tr((Σ1Σ2)^½)
    f1, f2 = features1.double(), features2.double()
    mu1, mu2 = f1.mean(dim=0), f2.mean(dim=0)
    sigma1, sigma2 = torch.cov(f1.T), torch.cov(f2.T)  # (F, F), unbiased
    eigenvalues, vectors = torch.linalg.eigh(sigma1)
    root1 = vectors @ torch.diag(eigenvalues.clamp(min=0).sqrt()) @ vectors.T  # √Σ1
    trace_sqrt = torch.linalg.eigvalsh(root1 @ sigma2 @ root1).clamp(min=0).sqrt().sum()
    return (mu1 - mu2).pow(2).sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_fid_from_features(fid_from_features)

# %% [markdown]
# ## Exercise 10.3 · The Inception Score from a table of probabilities
#
# Each row of `probs` (N, K) is a classifier's p(y|x) for one sample. With the marginal
# p(y) = mean of the rows, return the score (a 0-dim tensor)
#
# $$\mathrm{IS} = \exp\Big(\frac{1}{N} \sum_x \sum_y p(y\mid x) \ln \frac{p(y\mid x)}{p(y)}\Big).$$
#
# The tables in the check have no zeros, so you need no special case for 0 · ln 0.

# %%
def inception_score(probs: torch.Tensor) -> torch.Tensor:
    ### BEGIN SOLUTION marginal = mean row; mean KL of each row from it; exp
    marginal = probs.mean(dim=0, keepdim=True)  # (1, K): p(y)
    kl = (probs * (probs.log() - marginal.log())).sum(dim=1)  # (N,): KL(p(y|x) ‖ p(y))
    return kl.mean().exp()
    ### END SOLUTION


# %%
# NBVAL_CHECK_OUTPUT
_ = check_inception_score(inception_score)

# %% [markdown]
# ## Check your understanding
#
# With *your* functions:
#
# 1. PSNR of a clip's frames with added noise, in the [−1, 1] range (R = 2) and after mapping both
#    to [0, 1] (R = 1): the MSE shrinks 4-fold and R² too, so the values agree — unless R is wrong.
# 2. The Fréchet distance between 5000 two-feature samples of N(0, I) and 5000 of N(0, s² I) as s
#    grows: near zero only at s = 1 and close to 2·(s − 1)² (the exact value for the two Gaussians):
#    FID compares spreads as well as centres.
# 3. The IS of a classifier that always says "3" (1), of one that is sure and uses all ten digits
#    evenly (10), and of one that is unsure about everything (1): confident *and* varied.

# %%
from course_lib.data.video import moving_digits

clip = moving_digits(1, frames=4, size=32, seed=0).video[0]  # (T, 1, 32, 32) used as 4 images
noisy = (clip + 0.1 * torch.randn(clip.shape, generator=torch.Generator().manual_seed(0))).clamp(-1, 1)
print("PSNR, R = 2 on [-1, 1]:", [round(v, 2) for v in psnr(noisy, clip, 2.0).tolist()])
print("PSNR, R = 1 on [0, 1]: ", [round(v, 2) for v in psnr((noisy + 1) / 2, (clip + 1) / 2, 1.0).tolist()])
print("PSNR, R = 1 on [-1, 1] (the bug):", [round(v, 2) for v in psnr(noisy, clip, 1.0).tolist()])

g = torch.Generator().manual_seed(1)
reference = torch.randn(5000, 2, generator=g, dtype=torch.float64)  # two features: N(0, I)
for s in (0.25, 0.5, 1.0, 2.0, 4.0):
    other = s * torch.randn(5000, 2, generator=g, dtype=torch.float64)  # N(0, s² I)
    print(f"s = {s}: d² = {float(fid_from_features(reference, other)):.3f}   2·(s − 1)² = {2 * (s - 1) ** 2:.3f}")

sure = torch.eye(10, dtype=torch.float64) * 0.991 + 0.0009  # each row sure of one digit; all ten used
always_three = sure[[3] * 10]
unsure = torch.full((10, 10), 0.1, dtype=torch.float64)
for name, table in [("always '3'", always_three), ("sure and varied", sure), ("unsure", unsure)]:
    print(f"IS, {name:15s}: {inception_score(table).item():.2f}")
