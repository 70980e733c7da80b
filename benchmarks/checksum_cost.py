"""What the checksum adds to saving and loading the `cpu` video trainer's checkpoint.

    python benchmarks/checksum_cost.py [--rounds 31] [--folder runs/checksum]

Trains the `cpu` video U-Net for 2 steps and keeps its full training checkpoint (weights, EMA, AdamW
state: about 39 MB in 880 tensors). Then, one thread, the calls run interleaved, one of each per
round, so that other programs on the machine slow all alike, and the median CPU seconds of each are
printed with their ratios:

* load: ``read_saved`` (checksum checked) against ``torch.load`` of the same state written without
  a checksum, given its path or an open file (``read_saved`` loads through the handle it checked);
* save: ``atomic_save`` (no zip CRC-32, the file's checksum) against the same atomic write of a
  plain ``torch.save`` (zip CRC-32 on, no checksum).
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from course_lib._files import atomic_save, atomic_write, read_saved
from course_lib.workshop import zoo
from course_lib.workshop.recipes import get_recipe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--folder", type=Path, default=Path("runs/checksum"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    trained = args.folder / "trained.pt"
    if not trained.exists():
        zoo.train(get_recipe("video-shapes", "cpu", "unet3d"), trained, 2, progress=False)
    state = read_saved(trained)
    sealed, plain = args.folder / "sealed.pt", args.folder / "plain.pt"

    def load_by_handle():
        with open(plain, "rb") as file:
            return torch.load(file, map_location="cpu", weights_only=True)

    calls = {
        "torch.load(path)": lambda: torch.load(plain, map_location="cpu", weights_only=True),
        "torch.load(handle)": load_by_handle,
        "read_saved": lambda: read_saved(sealed),
        "plain save": lambda: atomic_write(plain, lambda file: torch.save(state, file)),
        "atomic_save": lambda: atomic_save(state, sealed),
    }
    calls["plain save"]()  # both files exist before the first load
    calls["atomic_save"]()
    seconds = {name: [] for name in calls}
    for _ in range(args.rounds):
        for name, call in calls.items():
            start = time.process_time()
            call()
            seconds[name].append(time.process_time() - start)
    median = {name: statistics.median(values) * 1e3 for name, values in seconds.items()}
    size = sealed.stat().st_size / 1e6
    print(f"{size:.1f} MB, {args.rounds} rounds, median CPU ms: "
          + ", ".join(f"{name} {ms:.1f}" for name, ms in median.items()))
    print(f"load: read_saved / torch.load(path) {median['read_saved'] / median['torch.load(path)']:.3f}, "
          f"/ torch.load(handle) {median['read_saved'] / median['torch.load(handle)']:.3f}; "
          f"save: atomic_save / plain save {median['atomic_save'] / median['plain save']:.3f}")


if __name__ == "__main__":
    main()
