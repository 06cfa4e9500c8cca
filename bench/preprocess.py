"""Preprocessing throughput against naive Pillow, tf.image and the reduced-decode ceiling, in one run.

JPEG 640×480, 1920×1080 and 4000×3000 (generated here: 1/f colour texture, soft-edged objects,
grain, quality 90) to a 224×224 NCHW float32 input with a per-channel mean, for SQUASH, CROP and
FILL; then a batch of 32 against 32 single calls. Every figure is single-threaded (TensorFlow is
pinned to one thread) and timed by CPU time in interleaved rounds (median), so a neighbour's load on a
shared machine does not decide the ratios. The goals are issue 3's. Each row also times the two steps
no path within the deviation bound can skip, the JPEG decode at the scale the bound allows and the
resampling from there, and prints the ratios a path costing only those two would reach: a goal above
them is out of reach of Pillow's decoder and resampler, however the rest is written.

    python bench/preprocess.py [--rounds 8] [--seconds 0.2]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from tensorgate_preprocessing.geometry import plan_resize, resolve_target_size
from tensorgate_preprocessing.images import JPEG_OVERSAMPLING, _resample, prepare_image
from tensorgate_preprocessing.spec import ImageSpec, ResizeType, TargetSize
from tensorgate_preprocessing.tensors import assemble, load_mean, preprocess

SIZES = [(640, 480), (1920, 1080), (4000, 3000)]
RESIZES = ["SQUASH", "CROP", "FILL"]
TARGET = 224
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
PIXEL_SCALING = 1.0
BATCH = 32
UNBOUNDED = 1.0  # jpeg_oversampling like Pillow's own draft: fastest, outside the deviation bound


# ---------------------------------------------------------------- images
def _pink(height: int, width: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    frequency = np.hypot(np.fft.rfftfreq(width)[None, :], np.fft.fftfreq(height)[:, None])
    frequency[0, 0] = 1.0
    spectrum = (rng.normal(size=frequency.shape) + 1j * rng.normal(size=frequency.shape)) / frequency**exponent
    spectrum[0, 0] = 0.0
    field = np.fft.irfft2(spectrum, s=(height, width))
    return field / field.std()


def synthetic_jpeg(width: int, height: int, seed: int = 0) -> bytes:
    """A photograph-like JPEG: 1/f texture, 25 soft-edged objects, grain; quality 90, 4:2:0."""
    rng = np.random.default_rng(seed)
    small = (min(height, 768), min(width, 1024))
    luma, red_green, blue_yellow = _pink(*small, rng, 1.0), _pink(*small, rng, 1.3), _pink(*small, rng, 1.3)
    channels = [luma + 0.35 * red_green, luma - 0.2 * red_green - 0.2 * blue_yellow, luma + 0.4 * blue_yellow]
    base = np.clip(128 + 42 * np.stack(channels, axis=-1), 0, 255).astype(np.uint8)
    picture = Image.fromarray(base).resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(picture)
    for _ in range(25):
        left, top = int(rng.integers(0, width)), int(rng.integers(0, height))
        right, bottom = (
            left + int(rng.integers(width // 30, width // 5)),
            top + int(rng.integers(height // 30, height // 5)),
        )
        color = tuple(int(value) for value in rng.integers(20, 236, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((left, top, right, bottom), fill=color)
    picture = picture.filter(ImageFilter.GaussianBlur(max(1.0, width / 1600)))
    pixels = np.clip(np.asarray(picture) + rng.normal(0, 3, size=(height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


# ---------------------------------------------------------------- methods
def naive_pillow(resize: str) -> Callable[[bytes], np.ndarray]:
    """Open, convert, resize BILINEAR, numpy: what a handler would write first."""
    mean = MEAN.reshape(1, 1, 3)

    def run(data: bytes) -> np.ndarray:
        picture = Image.open(io.BytesIO(data)).convert("RGB")
        plan = plan_resize(picture.size, ResizeType(resize), TargetSize(width=TARGET, height=TARGET))
        picture = picture.resize(plan.resized, Image.Resampling.BILINEAR)
        if resize == "CROP":
            left, top = plan.offset
            picture = picture.crop((left, top, left + TARGET, top + TARGET))
        elif resize == "FILL":
            canvas = Image.new("RGB", (TARGET, TARGET), (255, 255, 255))
            canvas.paste(picture, (0, 0))
            picture = canvas
        tensor = np.asarray(picture, dtype=np.float32) / 255.0 * PIXEL_SCALING - mean
        return tensor.transpose(2, 0, 1)[np.newaxis]

    return run


def tf_image(resize: str) -> Callable[[bytes], np.ndarray] | None:
    """tf.io.decode_jpeg + tf.image.resize (bilinear, TensorFlow's default) in a tf.function."""
    try:
        import tensorflow as tf
    except ImportError:
        return None
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    mean = tf.constant(MEAN.reshape(1, 1, 3))
    target = tf.constant(float(TARGET))

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def run(data: tf.Tensor) -> tf.Tensor:
        image = tf.io.decode_jpeg(data, channels=3)
        height, width = tf.cast(tf.shape(image)[0], tf.float32), tf.cast(tf.shape(image)[1], tf.float32)
        if resize == "SQUASH":
            resized = tf.image.resize(image, (TARGET, TARGET))
        else:
            pick = tf.maximum if resize == "CROP" else tf.minimum
            scale = pick(target / width, target / height)
            new_height = tf.cast(tf.floor(height * scale + 0.5), tf.int32)
            new_width = tf.cast(tf.floor(width * scale + 0.5), tf.int32)
            if resize == "CROP":
                new_height, new_width = tf.maximum(new_height, TARGET), tf.maximum(new_width, TARGET)
                resized = tf.image.resize(image, tf.stack([new_height, new_width]))
                top, left = (new_height - TARGET) // 2, (new_width - TARGET) // 2
                resized = resized[top : top + TARGET, left : left + TARGET]
            else:
                new_height, new_width = tf.minimum(new_height, TARGET), tf.minimum(new_width, TARGET)
                resized = tf.image.resize(image, tf.stack([new_height, new_width]))
                resized = tf.pad(
                    resized, [[0, TARGET - new_height], [0, TARGET - new_width], [0, 0]], constant_values=255
                )
        tensor = resized / 255.0 * PIXEL_SCALING - mean
        return tf.transpose(tensor, (2, 0, 1))[tf.newaxis]

    return lambda data: run(tf.constant(data)).numpy()


def draft_decode(data: bytes, size: tuple[int, int]) -> Image.Image:
    """Decode only, at the smallest DCT scale Pillow's draft keeps at least ``size`` for."""
    picture = Image.open(io.BytesIO(data))
    picture.draft("RGB", size)
    picture.load()
    return picture


def draft_ceiling(data: bytes) -> Image.Image:
    """Decode only, at the reduced DCT scale Pillow's draft picks for 224×224: the practical ceiling."""
    return draft_decode(data, (TARGET, TARGET))


def bound_resample(decoded: Image.Image, scale: int, spec: ImageSpec, original: tuple[int, int]) -> object:
    """The default path's resampling alone, from a picture already decoded at ``scale``."""
    return _resample(decoded, scale, None, spec.resize_type, resolve_target_size(spec), False, original)


# ---------------------------------------------------------------- measurement
def measure(methods: dict[str, Callable[[], object]], rounds: int, seconds: float) -> dict[str, float]:
    """Images per second of each method, from the CPU time of ``rounds`` interleaved chunks (median).

    CPU time, not wall time: on a shared machine a neighbour's load stretches wall time at random, while
    the CPU time a single-threaded call consumes stays put. (TensorFlow's own threads count too.)
    """
    for method in methods.values():
        method()
    per_call: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(rounds):
        for name, method in methods.items():
            calls, wall, cpu = 0, time.perf_counter(), time.process_time()
            while True:
                method()
                calls += 1
                if time.perf_counter() - wall >= seconds:
                    break
            per_call[name].append((time.process_time() - cpu) / calls)
    return {name: 1.0 / statistics.median(times) for name, times in per_call.items()}


def deviation(data: bytes, spec: ImageSpec) -> tuple[float, float, int]:
    """Mean and max |default path - reference path| on the 0-255 scale, and the JPEG decode scale used."""
    fast = prepare_image(data, spec)
    exact = prepare_image(data, spec, jpeg_oversampling=None)
    difference = np.abs(fast.pixels.astype(np.float64) - exact.pixels)
    return float(difference.mean()), float(difference.max()), fast.decode_scale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one timed chunk")
    args = parser.parse_args()

    print(f"Generating JPEGs {', '.join(f'{w}x{h}' for w, h in SIZES)} (quality 90)...", flush=True)
    images = {size: synthetic_jpeg(*size) for size in SIZES}
    for (width, height), data in images.items():
        print(f"  {width}x{height}: {len(data) / 1024:.0f} KiB")
    print(
        f"Target 224x224 NCHW float32, pixel_scaling {PIXEL_SCALING}, mean {[round(v, 3) for v in MEAN.tolist()]}; "
        f"JPEG_OVERSAMPLING {JPEG_OVERSAMPLING}; CPU time, median of {args.rounds} interleaved rounds of "
        f"{args.seconds}s; one thread."
    )
    print()
    header = (
        f"{'image':>9} {'resize':>6} | {'tensorgate':>10} {'reference':>9} {'unbounded':>9} {'naive':>7} "
        f"{'tf.image':>8} {'ceiling':>7} | {'x naive':>7} {'x tf':>5} {'x ceil':>6} | "
        f"{'scale':>5} {'mean|d|':>7} {'max|d|':>6} | {'decode':>7} {'resample':>8} {'best/c':>7} {'best/tf':>5}"
    )
    print("images/s (higher is better). tensorgate: the default path; reference: full decode (jpeg_oversampling")
    print(f"None); unbounded: jpeg_oversampling {UNBOUNDED}, outside the deviation bound. Ratios are tensorgate")
    print("over each baseline; |d| is the default path against the reference path on the 0-255 scale, and")
    print("scale the JPEG DCT reduction the default path used. decode: the JPEG decode alone at that scale,")
    print("the least any path within the deviation bound must do; resample: the default path's resampling")
    print("alone. best/c and best/tf: the ratios a path costing exactly decode + resample would reach, the")
    print("most Pillow's decoder and resampler allow within the bound.")
    print(header)
    print("-" * len(header))

    results = {}
    for size, data in images.items():
        for resize in RESIZES:
            spec = ImageSpec(
                dimension_order="NCHW", target_size=f"{TARGET}x{TARGET}", resize_type=resize,
                pixel_scaling=PIXEL_SCALING, mean_file="mean.npy",
            )  # fmt: skip
            buffer = io.BytesIO()
            np.save(buffer, MEAN.reshape(3, 1, 1))
            mean = load_mean(buffer.getvalue(), spec)
            methods: dict[str, Callable[[], object]] = {
                "tensorgate": partial(preprocess, data, spec, mean=mean),
                "reference": partial(preprocess, data, spec, mean=mean, jpeg_oversampling=None),
                "unbounded": partial(preprocess, data, spec, mean=mean, jpeg_oversampling=UNBOUNDED),
                "naive": partial(naive_pillow(resize), data),
                "ceiling": partial(draft_ceiling, data),
            }
            mean_deviation, max_deviation, scale = deviation(data, spec)
            # The decode the bound allows (its own floor), then the default path's resampling from there.
            reduced = (size[0] // scale, size[1] // scale)
            methods["decode"] = partial(draft_decode, data, reduced)
            methods["resample"] = partial(bound_resample, draft_decode(data, reduced), scale, spec, size)
            tf_run = tf_image(resize)
            if tf_run is not None:
                methods["tf.image"] = partial(tf_run, data)
            rates = measure(methods, args.rounds, args.seconds)
            results[(size, resize)] = rates
            ours = rates["tensorgate"]
            tf_rate = rates.get("tf.image", float("nan"))
            print(
                f"{size[0]:>4}x{size[1]:<4} {resize:>6} | {ours:>10.1f} {rates['reference']:>9.1f} "
                f"{rates['unbounded']:>9.1f} {rates['naive']:>7.1f} {tf_rate:>8.1f} {rates['ceiling']:>7.1f} | "
                f"{ours / rates['naive']:>6.2f}x {ours / tf_rate:>4.2f}x {ours / rates['ceiling']:>5.2f}x | "
                f"{'1/' + str(scale):>5} {mean_deviation:>7.2f} {max_deviation:>6.1f} | "
                f"{rates['decode']:>7.1f} {rates['resample']:>8.0f} {_best(rates) / rates['ceiling']:>6.2f}x "
                f"{_best(rates) / tf_rate:>4.2f}x",
                flush=True,
            )

    print()
    print(f"Batch of {BATCH} (SQUASH) straight into one array vs {BATCH} single calls, images/s:")
    batch_results = {}
    spec = ImageSpec(dimension_order="NCHW", target_size="224x224")
    for size, data in images.items():
        sources = [data] * BATCH
        rates = measure(
            {
                "single": partial(_one_at_a_time, sources, spec),
                "batch": partial(_batch, sources, spec),
            },
            args.rounds,
            args.seconds,
        )
        rates = {name: rate * BATCH for name, rate in rates.items()}
        batch_results[size] = rates
        print(
            f"  {size[0]:>4}x{size[1]:<4} single {rates['single']:7.1f}  batch {rates['batch']:7.1f} "
            f"({rates['batch'] / rates['single']:.2f}x)",
            flush=True,
        )

    print()
    print("Goals (issue 3):")
    _goal_lines(results, batch_results)


def _one_at_a_time(sources: list[bytes], spec: ImageSpec) -> list[np.ndarray]:
    return [preprocess(source, spec)[0] for source in sources]


def _batch(sources: list[bytes], spec: ImageSpec) -> np.ndarray:
    (batch,) = assemble([prepare_image(source, spec) for source in sources], spec)
    return batch.array


# (sizes, baseline, its label, goal): issue 3's goals, each for SQUASH, CROP and FILL
GOALS = [
    ([(1920, 1080)], "naive", "naive Pillow", 2.5),
    ([(4000, 3000)], "naive", "naive Pillow", 4.0),
    (SIZES, "tf.image", "tf.image", 1.4),
    (SIZES, "ceiling", "decode-only ceiling", 0.85),
]


def _goal_lines(results: dict, batch_results: dict) -> None:
    def check(label: str, ratio: float, goal: float, best: float | None = None) -> None:
        verdict = "met" if ratio >= goal else "NOT met"
        if ratio < goal and best is not None:
            verdict += f"; {best:.2f}x at most within the bound" + (" (out of reach)" if best < goal else "")
        print(f"  {label:<52} {ratio:5.2f}x  (goal >= {goal}x)  {verdict}")

    for sizes, baseline, name, goal in GOALS:
        for width, height in sizes:
            for resize in RESIZES:
                rates = results[((width, height), resize)]
                base = rates.get(baseline, float("nan"))
                check(f"{resize} {width}x{height} vs {name}", rates["tensorgate"] / base, goal, _best(rates) / base)
    for size, rates in batch_results.items():
        check(f"batch of {BATCH} vs single, {size[0]}x{size[1]}", rates["batch"] / rates["single"], 0.9)


def _best(rates: dict[str, float]) -> float:
    """Images/s of a path that costs exactly the bounded decode plus the resampling, nothing else."""
    return 1.0 / (1.0 / rates["decode"] + 1.0 / rates["resample"])


if __name__ == "__main__":
    main()
