"""The fast path's deviation from the plain reference over random geometries (docs/preprocessing.md's scan).

Draws random photographs (sizes 640×480 to 2048×1536, EXIF orientations), targets, resize types and
channels such that the effective oversampling of the reduced JPEG decode falls in
[threshold, threshold + 1.2], and reports mean and max |difference| on the 0-255 scale against the test
suite's float64 reference. Only cases that took the reduced decode count. ``--resampler`` swaps the
layer's resampling step for a candidate of bench/preprocess_candidates.py (pyvips, opencv); run it with
a Pillow-SIMD interpreter to scan Pillow-SIMD. ``--seconds`` or ``--cases``, whichever ends first.

    python bench/preprocess_deviation.py [--oversampling 2.1] [--seconds 400] [--cases N] [--seed 11]
        [--resampler pyvips]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the reference lives with the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))

import PIL  # noqa: E402
from preprocess_candidates import RESAMPLERS, resampling_with  # noqa: E402
from tensorgate_preprocessing.images import JPEG_OVERSAMPLING, prepare_image  # noqa: E402
from tensorgate_preprocessing.spec import ImageSpec  # noqa: E402
from tensorgate_preprocessing.tensors import assemble  # noqa: E402

from tests.unit.preprocessing.photos import photo_jpeg  # noqa: E402
from tests.unit.preprocessing.reference import reference  # noqa: E402

SIZES = [(640, 480), (1920, 1080), (1024, 768), (768, 1024), (800, 600), (1600, 1200), (1280, 720)]
SIZES += [(776, 1232), (1000, 336), (1200, 1600), (2048, 1536)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--oversampling", type=float, default=JPEG_OVERSAMPLING)
    parser.add_argument("--seconds", type=float, default=400.0)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--cases", type=int, default=10**9, help="stop after this many reduced-decode cases")
    parser.add_argument("--resampler", choices=sorted(RESAMPLERS), help="a candidate instead of Pillow's BILINEAR")
    args = parser.parse_args()
    resampler = RESAMPLERS[args.resampler]() if args.resampler else None

    rng = np.random.default_rng(args.seed)
    rows = []
    start = time.time()
    while time.time() - start < args.seconds and len(rows) < args.cases:
        width, height = SIZES[rng.integers(len(SIZES))]
        data = photo_jpeg(width, height, int(rng.integers(10, 18)), int(rng.integers(1, 9)))
        resize = ["SQUASH", "CROP", "FILL", "NETWORK"][rng.integers(4)]
        reduction = [2, 4, 8][rng.integers(3)] * rng.uniform(args.oversampling, args.oversampling + 1.2)
        if resize == "NETWORK":
            target = str(max(8, int(max(width, height) / reduction)))
        else:
            target_width = max(8, int(width / reduction / rng.uniform(1, 1.6)))
            target = f"{target_width}x{max(8, int(height / reduction / rng.uniform(1, 1.6)))}"
        color = ["RGB", "L"][rng.integers(2)]
        spec = ImageSpec(target_size=target, resize_type=resize, dimension_order="NHWC", color_channels=color)
        with resampling_with(resampler):
            prepared = prepare_image(data, spec, jpeg_oversampling=args.oversampling)
        if prepared.decode_scale == 1:
            continue
        difference = np.abs(assemble([prepared], spec)[0].array.astype(np.float64) - reference(data, spec))
        rows.append((difference.mean(), difference.max(), prepared.decode_scale, (width, height), target, resize))

    means = np.array([row[0] for row in rows])
    maxima = np.array([row[1] for row in rows])
    resampling = args.resampler or "Pillow BILINEAR"
    print(
        f"jpeg_oversampling {args.oversampling}, Pillow {PIL.__version__}, resampling {resampling}: "
        f"{len(rows)} cases in {time.time() - start:.0f}s"
    )
    print(f"  mean |d|: worst {means.max():.2f}, p99 {np.percentile(means, 99):.2f}, median {np.median(means):.2f}")
    print(
        f"  max |d|: worst {maxima.max():.1f}, p99 {np.percentile(maxima, 99):.1f}, "
        f"p95 {np.percentile(maxima, 95):.1f}, median {np.median(maxima):.1f}; "
        f"over 8: {(maxima > 8).sum()} ({(maxima > 8).mean():.1%})"
    )
    for row in sorted(rows, key=lambda row: -row[1])[:5]:
        print(
            f"  worst: mean {row[0]:.2f} max {row[1]:.1f} at 1/{row[2]}, {row[3][0]}x{row[3][1]} -> {row[4]} {row[5]}"
        )


if __name__ == "__main__":
    main()
