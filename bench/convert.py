"""Conversion benchmark: Keras MobileNetV2, ResNet50, EfficientNetB0, ConvNeXtTiny (weights=None), `convert_network`;
Caffe GoogLeNet (BVLC's layout and widths, random weights) sent as the v0.7 seed sends it.

Reports, for each model, in one run on this machine: conversion seconds, ONNX size, the parity
check's max abs diff on the softmax output, and onnxruntime's throughput against the TF
SavedModel signature at batch 1 and 8, as ratios measured side by side. The SavedModel is what
the installed Keras exports for serving: `model.export()` with Keras 3, `tf.saved_model.save`
with the Keras 2 of TensorFlow 2.15 and earlier.

    python bench/convert.py [--models mobilenetv2,resnet50,efficientnetb0,convnexttiny,caffe-googlenet] [--seconds 3]
                            [--json results.json]

Untrained networks have degenerate activations (MobileNetV2 with weights=None gives logits near
1e-11), so BatchNorm statistics are first set from data: one forward pass in training mode with
momentum 0 stores each layer's batch mean and variance, as training on that data would.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from functions.converter import onnx_model  # noqa: E402
from functions.converter.convert import ConversionOptions, convert_network  # noqa: E402
from functions.converter.errors import ConversionFailed  # noqa: E402

GOALS = {"mobilenetv2": 2.5, "resnet50": 1.25}
PARITY_GOAL = 1e-4
SIZE = 224


def build(name: str):
    import tensorflow as tf

    applications = tf.keras.applications
    if name == "mobilenetv2":
        model = applications.MobileNetV2(weights=None, input_shape=(SIZE, SIZE, 3))
        # MobileNetV2 preprocessing: x / 127.5 - 1, as pixel_scaling 2 and a mean of 1.
        preprocessing_image = {"pixel_scaling": 2.0, "mean": np.ones((1, 1, 3), np.float32), "color_channels": "RGB"}
    elif name == "resnet50":
        model = applications.ResNet50(weights=None, input_shape=(SIZE, SIZE, 3))
        # ResNet50 "caffe" preprocessing: BGR, 0-255, ImageNet mean subtracted.
        mean = np.array([103.939, 116.779, 123.68], np.float32).reshape(1, 1, 3)
        preprocessing_image = {"pixel_scaling": 255.0, "mean": mean, "color_channels": "BGR"}
    elif name == "efficientnetb0":
        # EfficientNet and ConvNeXt rescale and normalise inside the model: they take 0-255 RGB.
        model = applications.EfficientNetB0(weights=None, input_shape=(SIZE, SIZE, 3))
        preprocessing_image = {"pixel_scaling": 255.0, "mean": np.zeros((1, 1, 3), np.float32), "color_channels": "RGB"}
    elif name == "convnexttiny":
        model = applications.ConvNeXtTiny(weights=None, input_shape=(SIZE, SIZE, 3))
        preprocessing_image = {"pixel_scaling": 255.0, "mean": np.zeros((1, 1, 3), np.float32), "color_channels": "RGB"}
    else:
        raise SystemExit(f"unknown model {name!r}")
    return model, preprocessing_image


def _layers(model) -> list:
    found = []
    for layer in model.layers:
        found.append(layer)
        if hasattr(layer, "layers"):
            found.extend(_layers(layer))
    return found


def calibrate_batch_norm(model, images: np.ndarray) -> None:
    """Store each BatchNorm layer's statistics of `images`' activations (momentum 0, training pass)."""
    import tensorflow as tf

    layers = [layer for layer in _layers(model) if isinstance(layer, tf.keras.layers.BatchNormalization)]
    momenta = [layer.momentum for layer in layers]
    for layer in layers:
        layer.momentum = 0.0
    model(images, training=True)
    for layer, momentum in zip(layers, momenta, strict=True):
        layer.momentum = momentum


def synthetic_images(count: int, rng: np.random.Generator) -> np.ndarray:
    """Smooth random pictures on the 0–255 scale (blocks of colour plus noise), N×H×W×3."""
    coarse = rng.uniform(0, 255, size=(count, 7, 7, 3))
    index = np.arange(SIZE) * 7 // SIZE
    pixels = coarse[:, index][:, :, index]
    return np.clip(pixels + rng.normal(0, 12, size=pixels.shape), 0, 255).astype(np.float32)


def preprocess(pixels: np.ndarray, spec: dict[str, Any]) -> np.ndarray:
    if spec["color_channels"] == "BGR":
        pixels = pixels[..., ::-1]
    return (pixels / 255.0 * spec["pixel_scaling"] - spec["mean"]).astype(np.float32)


def throughput(run, batch: np.ndarray, seconds: float) -> float:
    """Images per second of `run(batch)`, after warm-up, over about `seconds`."""
    for _ in range(3):
        run(batch)
    count = 0
    started = time.perf_counter()
    while True:
        run(batch)
        count += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds and count >= 3:
            return count * len(batch) / elapsed


def tuned_session(ort, path: Path, batch: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """The fastest of a few onnxruntime settings for this batch: intra-op threads and spinning.

    Graph optimisation is always ORT_ENABLE_ALL (layout transforms and fusions; EXTENDED measured
    2-3x slower here). Threads and spinning depend on how busy the machine is, so they are tried.
    """
    cores = os.cpu_count() or 1
    candidates = [
        {"intra_op_threads": threads, "allow_spinning": spin}
        for threads in sorted({1, cores})
        for spin in (True, False)
    ]
    best = None
    for settings in candidates:
        session = ort.InferenceSession(
            str(path), sess_options=onnx_model.session_options(**settings), providers=["CPUExecutionProvider"]
        )
        name = session.get_inputs()[0].name
        rate = throughput(lambda batch, session=session, name=name: session.run(None, {name: batch}), batch, 1.0)
        if best is None or rate > best[0]:
            best = (rate, session, {**settings, "graph_optimization_level": "ORT_ENABLE_ALL"})
    assert best is not None
    return best[1], best[2]


def bench_model(name: str, seconds: float, workdir: Path) -> dict[str, Any]:
    import onnxruntime as ort
    import tensorflow as tf

    rng = np.random.default_rng(0)
    model, image_spec = build(name)
    calibrate_batch_norm(model, preprocess(synthetic_images(32, rng), image_spec))
    source = workdir / name / "upload"
    if hasattr(model, "export"):  # Keras 3: the serving export
        model.export(str(source), verbose=False)
    else:
        tf.saved_model.save(model, str(source))
    np.save(source / "mean.npy", image_spec["mean"])
    input_name = model.input_names[0] if hasattr(model, "input_names") else model.inputs[0].name
    preprocessing = {
        "inputs": [
            {
                "tensor_name": input_name,
                "image": {
                    "dimension_order": "NHWC",
                    "resize_type": "SQUASH",
                    "color_channels": image_spec["color_channels"],
                    "pixel_scaling": image_spec["pixel_scaling"],
                    "mean_file": "mean.npy",
                },
            }
        ]
    }
    output_dir = workdir / name / "onnx"
    started = time.perf_counter()
    result = convert_network(
        source, output_dir, framework="tensorflow-2.x", preprocessing=preprocessing, options=ConversionOptions()
    )
    conversion_seconds = time.perf_counter() - started
    softmax = result.parity["outputs"][0]

    # A second, independent parity figure on realistic pictures, at batch 8.
    loaded = tf.saved_model.load(str(source))
    signature = loaded.signatures["serving_default"]
    output_key = next(iter(signature.structured_outputs))
    pictures = preprocess(synthetic_images(8, rng), image_spec)
    tf_probs = signature(**{input_name: tf.constant(pictures)})[output_key].numpy()

    def run_tf(batch):
        return signature(**{input_name: tf.constant(batch)})[output_key].numpy()

    speeds: dict[str, Any] = {}
    picture_diff = 0.0
    for batch_size in (1, 8):
        batch = preprocess(synthetic_images(batch_size, rng), image_spec)
        session, settings = tuned_session(ort, output_dir / "model.onnx", batch)
        onnx_input = session.get_inputs()[0].name
        picture_diff = max(picture_diff, float(np.max(np.abs(tf_probs - session.run(None, {onnx_input: pictures})[0]))))

        def run_onnx(batch, session=session, onnx_input=onnx_input):
            return session.run(None, {onnx_input: batch})[0]

        rounds = []
        for _ in range(3):  # TF and onnxruntime side by side, so machine load hits both alike
            tf_rate = throughput(run_tf, batch, seconds)
            onnx_rate = throughput(run_onnx, batch, seconds)
            rounds.append((tf_rate, onnx_rate, onnx_rate / tf_rate))
        speeds[f"batch_{batch_size}"] = {
            "tf_images_per_s": round(statistics.median(r[0] for r in rounds), 2),
            "onnx_images_per_s": round(statistics.median(r[1] for r in rounds), 2),
            "ratio": round(statistics.median(r[2] for r in rounds), 2),
            "ratios": [round(r[2], 2) for r in rounds],
            "onnxruntime": settings,
        }
    return {
        "model": name,
        "conversion_s": round(conversion_seconds, 1),
        "load_freeze_convert_s": result.timings.get("convert_s"),
        "timings": result.timings,
        "onnx_bytes": result.model_size,
        "parity_max_abs": softmax["max_abs"],
        "parity_max_rel": softmax["max_rel"],
        "parity_passed": result.parity["passed"],
        "pictures_max_abs": picture_diff,
        "softmax_max": float(np.max(tf_probs)),
        "throughput": speeds,
        "load_average": os.getloadavg()[0],
    }


# Caffe networks built by tests/unit/converter/caffe_zoo.py: name -> (builder, its arguments, feature blob to
# compare besides the outputs). caffe-googlenet has BVLC's widths; the others are the tests' narrow nets.
CAFFE_MODELS: dict[str, tuple[str, dict[str, Any], str | None]] = {
    "caffe-googlenet": ("googlenet_shaped", {"classes": 1000, "full": True}, "loss3/classifier"),
    "caffe-googlenet-small": ("googlenet_shaped", {}, "loss3/classifier"),
    "caffe-alexnet": ("alexnet_shaped", {}, "fc8"),
    # BVLC CaffeNet's widths at 227×227: a 244 MB .caffemodel (not in the default list: about a minute).
    "caffe-caffenet": ("alexnet_shaped", {"size": 227, "classes": 1000, "full": True}, "fc8"),
    "caffe-resnet": ("resnet_shaped", {}, "fc"),
    "caffe-every-layer": ("every_layer", {}, None),
}


def bench_caffe(name: str, seconds: float, workdir: Path) -> dict[str, Any]:
    """deploy.prototxt + snapshot.caffemodel + a larger .binaryproto mean, the seed's preprocessing: conversion
    seconds and parity, then onnxruntime against the numpy reference of Caffe's layers at batch 1."""
    import onnxruntime as ort

    from functions.converter.caffe_sources import network, reference
    from tests.unit.converter import caffe_zoo

    builder, arguments, feature = CAFFE_MODELS[name]
    net = getattr(caffe_zoo, builder)(**arguments)
    source = net.write(workdir / name / "upload")
    size = net.inputs["data"][-1]
    mean = np.broadcast_to(np.array([104.0, 117.0, 123.0], np.float32)[:, None, None], (3, size + 32, size + 32))
    (source / "mean_file_1.binaryproto").write_bytes(caffe_zoo.mean_binaryproto(mean))
    image = {"dimension_order": "NCHW", "target_size": f"{size}x{size}", "resize_type": "SQUASH"}
    image |= {"mean_file": "mean_file_1.binaryproto", "color_channels": "BGR", "pixel_scaling": 255.0}
    preprocessing = {"inputs": [{"tensor_name": "data", "image": image}], "batched_output": True}
    output_dir = workdir / name / "onnx"
    started = time.perf_counter()
    # The classifier's logits too: random weights saturate a softmax, whose differences then say little.
    post = [{"tensors_output": {"tensors": [feature]}}] if feature else None
    result = convert_network(
        source, output_dir, framework="nv-caffe-0.x-mod", preprocessing=preprocessing, postprocessings=post
    )
    conversion_seconds = time.perf_counter() - started
    caffe = network.load(source / "deploy.prototxt", source / "snapshot.caffemodel", "deploy.prototxt", "weights")
    session = ort.InferenceSession(str(output_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(0).normal(0, 60, (1, 3, size, size)).astype(np.float32)
    onnx_rate = throughput(lambda x: session.run(None, {"data": x}), batch, seconds)
    reference_rate = throughput(lambda x: reference.forward(caffe, {"data": x}), batch, seconds)
    return {
        "model": name,
        "framework": "caffe",
        "conversion_s": round(conversion_seconds, 1),
        "timings": result.timings,
        "weights_bytes": (source / "snapshot.caffemodel").stat().st_size,
        "onnx_bytes": result.model_size,
        "parity_max_abs": max(item["max_abs"] for item in result.parity["outputs"]),
        "parity": {
            item["name"]: {"max_abs": item["max_abs"], "max_rel": item["max_rel"]} for item in result.parity["outputs"]
        },
        "parity_passed": result.parity["passed"],
        "batch_1": {
            "onnx_images_per_s": round(onnx_rate, 2),
            "numpy_reference_images_per_s": round(reference_rate, 2),
            "ratio": round(onnx_rate / reference_rate, 1),
        },
        "load_average": os.getloadavg()[0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mobilenetv2,resnet50,efficientnetb0,convnexttiny,caffe-googlenet")
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per measurement")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--pytorch", action="store_true", help="bench PyTorch uploads instead (convert_pytorch.py)")
    parser.add_argument("--zoo", action="store_true", help="with --pytorch: also the PyTorch zoo table")
    arguments = parser.parse_args()
    if arguments.pytorch:
        from bench import convert_pytorch

        pytorch_results = convert_pytorch.run(arguments.seconds, arguments.zoo)
        print(json.dumps(pytorch_results, indent=2))
        if arguments.json:
            arguments.json.write_text(json.dumps(pytorch_results, indent=2))
        return 0
    results = []
    with tempfile.TemporaryDirectory(prefix="tensorgate-bench-") as workdir:
        for name in arguments.models.split(","):
            print(f"… {name}", file=sys.stderr, flush=True)
            try:
                bench = bench_caffe if name.strip() in CAFFE_MODELS else bench_model
                results.append(bench(name.strip(), arguments.seconds, Path(workdir)))
            except ConversionFailed as error:  # a row that says why, not a bench that stops
                results.append({"model": name.strip(), "failed": error.reason.value, "error": str(error)})
    print(
        f"{'model':<12} {'convert s':>9} {'load+convert s':>14} {'ONNX MB':>8} {'max abs':>9} "
        f"{'b1 ONNX/TF':>10} {'b8 ONNX/TF':>10}  goals"
    )
    for row in results:
        if "failed" in row:
            print(f"{row['model']:<12} not converted ({row['failed']}): {row['error'][:200]}")
            continue
        if row.get("framework") == "caffe":
            print(
                f"{row['model']:<12} {row['conversion_s']:>9.1f} {row['timings']['convert_s']:>14.1f} "
                f"{row['onnx_bytes'] / 1e6:>8.1f} {row['parity_max_abs']:>9.2e}  "
                f"worst max rel {max(item['max_rel'] for item in row['parity'].values()):.1e}; "
                f"b1 ONNX/numpy reference {row['batch_1']['ratio']:.1f}  "
                f"parity rule (max rel <= 1e-4 of each output's scale): {'met' if row['parity_passed'] else 'NOT met'}"
            )
            continue
        goal = GOALS.get(row["model"], 1.0)
        ratios = [row["throughput"][f"batch_{size}"]["ratio"] for size in (1, 8)]
        parity_ok = max(row["parity_max_abs"], row["pictures_max_abs"]) <= PARITY_GOAL
        speed_ok = all(ratio >= goal for ratio in ratios)
        print(
            f"{row['model']:<12} {row['conversion_s']:>9.1f} {row['load_freeze_convert_s']:>14.1f} "
            f"{row['onnx_bytes'] / 1e6:>8.1f} {max(row['parity_max_abs'], row['pictures_max_abs']):>9.2e} "
            f"{ratios[0]:>10.2f} {ratios[1]:>10.2f}  "
            f"parity<= {PARITY_GOAL:g}: {'met' if parity_ok else 'NOT met'}; "
            f"speed>= {goal}x: {'met' if speed_ok else 'NOT met'}"
        )
    print(json.dumps(results, indent=2))
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
