"""Preprocessing throughput against naive Pillow, tf.image and the reduced-decode ceiling, in one run.

JPEG 640×480, 1920×1080 and 4000×3000 (generated here: 1/f colour texture, soft-edged objects,
grain, quality 90) to a 224×224 NCHW float32 input with a per-channel mean, for SQUASH, CROP and
FILL; then a batch of 32 against 32 single calls. Every figure is single-threaded (TensorFlow is
pinned to one thread) and timed by CPU time in interleaved rounds (median), so a neighbour's load on a
shared machine does not decide the ratios. The goals are issue 3's. Each row also times the two steps
no path within the deviation bound can skip, the JPEG decode at the scale the bound allows and the
resampling from there, and prints the ratios a path costing only those two would reach: a goal above
them is out of reach of Pillow's decoder and resampler, however the rest is written.

Beside the layer, in the same interleaved rounds, the candidates of bench/preprocess_candidates.py
(libvips and OpenCV resamplers inside the layer's pipeline; Pillow-SIMD, the same layer code on a
Pillow built with AVX2, in its own interpreter given by --pillow-simd), each with its deviation from
the float64 reference of the tests; decoders alone at the bound's DCT scale; and the default path on
1, 2 and all cores (wall time, one thread per core). The goals printed are issue 16's.

    python bench/preprocess.py [--rounds 8] [--seconds 0.2] [--pillow-simd /path/to/python]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import PIL
from PIL import Image, ImageDraw, ImageFilter
from tensorgate_preprocessing.geometry import plan_resize, resolve_target_size
from tensorgate_preprocessing.images import JPEG_OVERSAMPLING, _resample, prepare_image
from tensorgate_preprocessing.spec import ImageSpec, ResizeType, TargetSize
from tensorgate_preprocessing.tensors import assemble, load_mean, preprocess

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the float64 reference lives with the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))

from preprocess_candidates import available_resamplers, decoders, resampling_with  # noqa: E402

from tests.unit.preprocessing.reference import reference  # noqa: E402

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
class Remote:
    """A method timed in another interpreter (Pillow-SIMD replaces Pillow, so it cannot share this one).

    It answers with its own CPU time per call, so it takes its turn in the interleaved rounds like the rest.
    """

    def __init__(self, child: subprocess.Popen, request: dict) -> None:
        self.child, self.request = child, request

    def ask(self, **fields: object) -> dict:
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(json.dumps({**self.request, **fields}) + "\n")
        self.child.stdin.flush()
        return json.loads(self.child.stdout.readline())

    def __call__(self) -> object:
        return self.ask(op="call")

    def timed(self, seconds: float) -> float:
        return float(self.ask(op="time", seconds=seconds)["cpu_per_call"])


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
            per_call[name].append(_cpu_per_call(method, seconds))
    return {name: 1.0 / statistics.median(times) for name, times in per_call.items()}


def _cpu_per_call(method: Callable[[], object], seconds: float) -> float:
    if isinstance(method, Remote):
        return method.timed(seconds)
    calls, wall, cpu = 0, time.perf_counter(), time.process_time()
    while True:
        method()
        calls += 1
        if time.perf_counter() - wall >= seconds:
            break
    return (time.process_time() - cpu) / calls


def deviation(data: bytes, spec: ImageSpec) -> tuple[float, float, int]:
    """Mean and max |default path - reference path| on the 0-255 scale, and the JPEG decode scale used."""
    fast = prepare_image(data, spec)
    exact = prepare_image(data, spec, jpeg_oversampling=None)
    difference = np.abs(fast.pixels.astype(np.float64) - exact.pixels)
    return float(difference.mean()), float(difference.max()), fast.decode_scale


def bound_deviation(data: bytes, spec: ImageSpec) -> tuple[float, float]:
    """Mean and max |default path - the tests' float64 reference| on 0-255: what the bound is stated on."""
    tensor = assemble([prepare_image(data, spec)], spec)[0].array
    difference = np.abs(tensor.astype(np.float64) - reference(data, spec))
    return float(difference.mean()), float(difference.max())


def row_spec(resize: str) -> ImageSpec:
    return ImageSpec(dimension_order="NHWC", target_size=f"{TARGET}x{TARGET}", resize_type=resize)


def serve_child() -> None:
    """--child: time and check the default path for a parent process, one JSON request per line."""
    cache: dict[str, bytes] = {}
    for line in sys.stdin:
        request = json.loads(line)
        data = cache.setdefault(request["image"], Path(request["image"]).read_bytes())
        spec = row_spec(request["resize"])
        if request["op"] == "call":
            preprocess(data, spec)
            answer: dict[str, object] = {"pillow": PIL.__version__}
        elif request["op"] == "time":
            answer = {"cpu_per_call": _cpu_per_call(partial(preprocess, data, spec), request["seconds"])}
        else:
            mean_deviation, max_deviation = bound_deviation(data, spec)
            answer = {"mean": mean_deviation, "max": max_deviation}
        print(json.dumps(answer), flush=True)


def threaded_rates(data: bytes, spec: ImageSpec, threads: list[int], rounds: int, seconds: float) -> dict[int, float]:
    """Wall-time images/s of the default path on ``n`` threads (one per core), interleaved, median."""
    rates: dict[int, list[float]] = {n: [] for n in threads}
    pools = {n: ThreadPoolExecutor(n) for n in threads}
    try:
        for _ in range(rounds):
            for n, pool in pools.items():
                done, started = 0, time.perf_counter()
                while time.perf_counter() - started < seconds:
                    list(pool.map(lambda _: preprocess(data, spec), range(4 * n)))
                    done += 4 * n
                rates[n].append(done / (time.perf_counter() - started))
    finally:
        for pool in pools.values():
            pool.shutdown()
    return {n: statistics.median(values) for n, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one timed chunk")
    parser.add_argument("--pillow-simd", metavar="PYTHON", help="an interpreter with Pillow-SIMD and this project")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        serve_child()
        return

    print(f"Generating JPEGs {', '.join(f'{w}x{h}' for w, h in SIZES)} (quality 90)...", flush=True)
    images = {size: synthetic_jpeg(*size) for size in SIZES}
    for (width, height), data in images.items():
        print(f"  {width}x{height}: {len(data) / 1024:.0f} KiB")
    resamplers = available_resamplers()
    child, folder = _start_child(args.pillow_simd, images)
    candidates = ["Pillow-SIMD"] * (child is not None) + list(resamplers)
    print(
        f"Target 224x224 NCHW float32, pixel_scaling {PIXEL_SCALING}, mean {[round(v, 3) for v in MEAN.tolist()]}; "
        f"JPEG_OVERSAMPLING {JPEG_OVERSAMPLING}; CPU time, median of {args.rounds} interleaved rounds of "
        f"{args.seconds}s; one thread. Pillow {PIL.__version__}; candidates: {', '.join(candidates) or 'none'}."
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

    results, candidate_rows, decoder_rows = {}, {}, {}
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
            # The candidates: the same call with another resampler, or the same code on Pillow-SIMD.
            deviations = {"tensorgate": bound_deviation(data, row_spec(resize))}
            if child is not None:
                remote = Remote(child, {"image": str(folder / f"{size[0]}x{size[1]}.jpg"), "resize": resize})
                methods["Pillow-SIMD"] = remote
                answer = remote.ask(op="deviation")
                deviations["Pillow-SIMD"] = (answer["mean"], answer["max"])
            for name, resampler in resamplers.items():
                methods[name] = partial(_with_resampler, resampler, data, spec, mean)
                with resampling_with(resampler):
                    deviations[name] = bound_deviation(data, row_spec(resize))
            if resize == "SQUASH":
                for name, call in decoders(data, scale).items():
                    methods[f"decode:{name}"] = call
            rates = measure(methods, args.rounds, args.seconds)
            results[(size, resize)] = rates
            candidate_rows[(size, resize)] = deviations
            if resize == "SQUASH":
                decoder_rows[size] = (scale, {k[7:]: v for k, v in rates.items() if k.startswith("decode:")})
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
            print(
                f"{'':>16} candidates: "
                + " | ".join(
                    f"{name} {rates[name]:.1f} ({rates[name] / ours:.2f}x; d {deviations[name][0]:.2f}/"
                    f"{deviations[name][1]:.1f})"
                    for name in deviations
                ),
                flush=True,
            )
    if child is not None:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait()

    print()
    print("Candidates, same rounds: images/s per core, x the default path (Pillow), and mean/max |d| against")
    print("the float64 reference at that geometry (224x224 NHWC RGB; the bound: mean <= 1, max <= 8).")
    names = ["tensorgate", *candidates]
    print(f"{'image':>9} {'resize':>6} | " + " | ".join(f"{name:^27}" for name in names))
    for (size, resize), deviations in candidate_rows.items():
        rates = results[(size, resize)]
        cells = [
            f"{rates[name]:7.1f} {rates[name] / rates['tensorgate']:5.2f}x {deviations[name][0]:5.2f} "
            f"{deviations[name][1]:5.1f}"
            for name in names
        ]
        print(f"{size[0]:>4}x{size[1]:<4} {resize:>6} | " + " | ".join(f"{cell:^27}" for cell in cells))
    print()
    print("Decoders alone (RGB), at the DCT scale the default path uses, images/s per core:")
    for size, (scale, rates) in decoder_rows.items():
        print(
            f"  {size[0]:>4}x{size[1]:<4} 1/{scale}: "
            + "  ".join(f"{name} {rate:.1f} ({rate / rates['Pillow']:.2f}x)" for name, rate in rates.items())
        )

    print()
    cores = os.cpu_count() or 1
    threads = sorted({1, 2, cores})
    print(f"The default path on {', '.join(map(str, threads))} threads (one per core; {cores} cores), wall images/s:")
    thread_results = {}
    for size, data in images.items():
        rates = threaded_rates(data, row_spec("SQUASH"), threads, max(3, args.rounds // 2), 4 * args.seconds)
        thread_results[size] = rates
        print(
            f"  {size[0]:>4}x{size[1]:<4} SQUASH "
            + "  ".join(f"{n} thread(s) {rate:7.1f} ({rate / rates[1]:.2f}x)" for n, rate in rates.items()),
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
    for name in names:
        worst = max(max(row[name][1] for row in candidate_rows.values()), 0)
        worst_mean = max(row[name][0] for row in candidate_rows.values())
        within = worst_mean <= 1.0 and worst <= 8.0
        print(f"Goals (issue 16) for {name} (worst here: mean {worst_mean:.2f}, max {worst:.1f}; "
              f"{'within' if within else 'OUTSIDE'} the bound at these geometries):")  # fmt: skip
        _goal_lines(results, name)
    for size, rates in batch_results.items():
        ratio = rates["batch"] / rates["single"]
        print(f"  batch of {BATCH} vs single, {size[0]}x{size[1]}: {ratio:.2f}x (goal >= 0.9)")
    if folder is not None:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def _start_child(python: str | None, images: dict) -> tuple[subprocess.Popen | None, Path | None]:
    if python is None:
        return None, None
    folder = Path(tempfile.mkdtemp(prefix="tensorgate-bench-"))
    for (width, height), data in images.items():
        (folder / f"{width}x{height}.jpg").write_bytes(data)
    child = subprocess.Popen(
        [python, __file__, "--child"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )  # fmt: skip
    request = {"image": str(folder / "640x480.jpg"), "resize": "SQUASH", "op": "call"}
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(json.dumps(request) + "\n")
    child.stdin.flush()
    version = json.loads(child.stdout.readline())["pillow"]
    print(f"Pillow-SIMD: {python} runs Pillow {version}")
    return child, folder


def _with_resampler(resampler: Callable, data: bytes, spec: ImageSpec, mean: np.ndarray) -> object:
    with resampling_with(resampler):
        return preprocess(data, spec, mean=mean)


def _one_at_a_time(sources: list[bytes], spec: ImageSpec) -> list[np.ndarray]:
    return [preprocess(source, spec)[0] for source in sources]


def _batch(sources: list[bytes], spec: ImageSpec) -> np.ndarray:
    (batch,) = assemble([prepare_image(source, spec) for source in sources], spec)
    return batch.array


# (sizes, baseline, its label, goal): issue 16's goals, each for SQUASH, CROP and FILL
GOALS = [
    ([(1920, 1080)], "tensorgate", "today's default path", 1.5),
    ([(1920, 1080)], "tf.image", "tf.image", 1.4),
    ([(640, 480)], "tf.image", "tf.image", 1.2),
    ([(4000, 3000)], "tensorgate", "today's default path", 1.3),
]


def _goal_lines(results: dict, name: str) -> None:
    for sizes, baseline, label, goal in GOALS:
        for width, height in sizes:
            for resize in RESIZES:
                rates = results[((width, height), resize)]
                ratio = rates[name] / rates.get(baseline, float("nan"))
                verdict = "met" if ratio >= goal else "NOT met"
                case = f"{resize} {width}x{height} vs {label}"
                print(f"  {case:<40} {ratio:5.2f}x  (goal >= {goal}x)  {verdict}")


def _best(rates: dict[str, float]) -> float:
    """Images/s of a path that costs exactly the bounded decode plus the resampling, nothing else."""
    return 1.0 / (1.0 / rates["decode"] + 1.0 / rates["resample"])


if __name__ == "__main__":
    main()
