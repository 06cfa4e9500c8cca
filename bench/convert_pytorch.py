"""PyTorch conversion benchmark: ResNet18 (torchvision's layout, 224×224) speed, and the PyTorch zoo table.

Speed: the network is scripted (torch.jit.save) and exported (torch.export.save) as users upload
it, converted by `convert_network`, then onnxruntime's throughput is measured against torch running
the same uploaded file (and the eager module it came from) at batch 1 and 8, side by side in rounds
so that machine load hits both alike. Zoo: every architecture of tests/unit/converter/torch_zoo.py,
scripted and exported, with its conversion seconds and parity max abs.

    python bench/convert_pytorch.py [--seconds 3] [--zoo] [--json results.json]
    python bench/convert.py --pytorch            # the same, from the conversion benchmark
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from functions.converter import onnx_model  # noqa: E402
from functions.converter.convert import convert_network  # noqa: E402
from functions.converter.errors import ConversionFailed  # noqa: E402
from tests.unit.converter import torch_zoo  # noqa: E402

GOAL = 1.2  # ONNX through onnxruntime against torch, batch 1, CPU
SIZE = 224
SPEC = [{"name": "x", "dtype": "float32", "shape": ["batch", 3, SIZE, SIZE]}]


def throughput(run, batch: Any, seconds: float) -> float:
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


def fastest_session(path: Path, batch: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """onnxruntime with the best of a few thread settings for this batch (as bench/convert.py does)."""
    import onnxruntime as ort

    best = None
    for threads in sorted({1, os.cpu_count() or 1}):
        for spin in (True, False):
            options = onnx_model.session_options(intra_op_threads=threads, allow_spinning=spin)
            session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
            rate = throughput(lambda feed, session=session: session.run(None, {"x": feed}), batch, 1.0)
            if best is None or rate > best[0]:
                best = (rate, session, {"intra_op_threads": threads, "allow_spinning": spin})
    assert best is not None
    return best[1], best[2]


def fastest_torch_threads(run: Any, batch: np.ndarray) -> int:
    """torch's intra-op threads that run this batch fastest here: on a busy machine one thread can beat all
    cores (OpenMP waits on descheduled threads), so torch gets the same choice onnxruntime gets."""
    best = None
    for threads in sorted({1, os.cpu_count() or 1}):
        torch.set_num_threads(threads)
        rate = throughput(run, batch, 1.0)
        if best is None or rate > best[0]:
            best = (rate, threads)
    assert best is not None
    torch.set_num_threads(best[1])
    return best[1]


def bench_speed(kind: str, seconds: float, workdir: Path) -> dict[str, Any]:
    """ResNet18 at full width, uploaded as `kind` (torchscript or torch_export): conversion and speed."""
    torch.manual_seed(0)
    model = torch_zoo.ResNet18(num_classes=1000, width=64)
    torch_zoo._trained_statistics(model)
    model.eval()
    upload = workdir / kind / "upload"
    upload.mkdir(parents=True)
    example = torch.randn(2, 3, SIZE, SIZE)
    if kind == "torchscript":
        path = torch_zoo.save_torchscript(model, upload / "model.pt")
        original = torch.jit.load(str(path))
    else:
        path = torch_zoo.save_exported(model, (example,), tuple(SPEC), upload / "model.pt2")
        original = torch.export.load(str(path)).module()
    started = time.perf_counter()
    result = convert_network(upload, workdir / kind / "onnx", framework="pytorch", input_spec=SPEC)
    conversion_seconds = time.perf_counter() - started

    def run_torch(batch: np.ndarray, module: Any = original) -> Any:
        with torch.inference_mode():
            return module(torch.from_numpy(batch))

    def run_eager(batch: np.ndarray) -> Any:
        with torch.inference_mode():
            return model(torch.from_numpy(batch))

    rng = np.random.default_rng(0)
    speeds: dict[str, Any] = {}
    for batch_size in (1, 8):
        batch = rng.standard_normal((batch_size, 3, SIZE, SIZE)).astype(np.float32)
        session, settings = fastest_session(workdir / kind / "onnx" / "model.onnx", batch)
        threads = fastest_torch_threads(run_torch, batch)
        difference = float(np.max(np.abs(session.run(None, {"x": batch})[0] - run_eager(batch).numpy())))

        def run_onnx(feed: np.ndarray, session: Any = session) -> Any:
            return session.run(None, {"x": feed})

        rounds = []
        for _ in range(3):
            torch_rate = throughput(run_torch, batch, seconds)
            eager_rate = throughput(run_eager, batch, seconds)
            onnx_rate = throughput(run_onnx, batch, seconds)
            rounds.append((torch_rate, eager_rate, onnx_rate))
        speeds[f"batch_{batch_size}"] = {
            "torch_file_images_per_s": round(statistics.median(r[0] for r in rounds), 2),
            "torch_eager_images_per_s": round(statistics.median(r[1] for r in rounds), 2),
            "onnx_images_per_s": round(statistics.median(r[2] for r in rounds), 2),
            "ratio": round(statistics.median(r[2] / r[0] for r in rounds), 2),
            "ratio_to_eager": round(statistics.median(r[2] / r[1] for r in rounds), 2),
            "ratios": [round(r[2] / r[0], 2) for r in rounds],
            "max_abs_vs_eager": difference,
            "onnxruntime": settings,
            "torch_threads": threads,
        }
    return {
        "model": f"resnet18 ({kind})",
        "conversion_s": round(conversion_seconds, 1),
        "timings": result.timings,
        "onnx_bytes": result.model_size,
        "parity_max_abs": max(item["max_abs"] for item in result.parity["outputs"]),
        "throughput": speeds,
        "load_average": os.getloadavg()[0],
    }


def zoo_table(workdir: Path) -> list[dict[str, Any]]:
    """Every torch_zoo architecture, scripted and exported: converted?, parity max abs, conversion seconds."""
    rows = []
    for name, architecture in torch_zoo.ARCHITECTURES.items():
        for kind in ("torchscript", "torch_export"):
            upload = workdir / "zoo" / name / kind
            upload.mkdir(parents=True)
            model = architecture.model()
            if kind == "torchscript":
                torch_zoo.save_torchscript(model, upload / "model.pt")
            else:
                torch_zoo.save_exported(model, architecture.examples(), architecture.input_spec, upload / "model.pt2")
            started = time.perf_counter()
            try:
                result = convert_network(
                    upload,
                    upload.parent / f"{kind}-onnx",
                    framework="pytorch",
                    input_spec=list(architecture.input_spec),
                )
            except ConversionFailed as error:
                rows.append({"architecture": name, "upload": kind, "converted": False, "error": error.message})
                continue
            rows.append(
                {
                    "architecture": name,
                    "upload": kind,
                    "converted": result.parity["passed"],
                    "parity_max_abs": max(item["max_abs"] for item in result.parity["outputs"]),
                    "conversion_s": round(time.perf_counter() - started, 1),
                    "exporter": result.source["exporter"],
                }
            )
    return rows


def run(seconds: float, zoo: bool) -> dict[str, Any]:
    results: dict[str, Any] = {"speed": [], "zoo": []}
    with tempfile.TemporaryDirectory(prefix="tensorgate-bench-pytorch-") as workdir:
        for kind in ("torchscript", "torch_export"):
            print(f"… resnet18 ({kind})", file=sys.stderr, flush=True)
            results["speed"].append(bench_speed(kind, seconds, Path(workdir)))
        if zoo:
            print("… zoo", file=sys.stderr, flush=True)
            results["zoo"] = zoo_table(Path(workdir))
    print(f"{'model':<26} {'convert s':>9} {'max abs':>9} {'b1 ONNX/torch':>13} {'b8 ONNX/torch':>13}  goal")
    for row in results["speed"]:
        ratios = [row["throughput"][f"batch_{size}"]["ratio"] for size in (1, 8)]
        print(
            f"{row['model']:<26} {row['conversion_s']:>9.1f} {row['parity_max_abs']:>9.2e} "
            f"{ratios[0]:>13.2f} {ratios[1]:>13.2f}  batch 1 >= {GOAL}x: {'met' if ratios[0] >= GOAL else 'NOT met'}"
        )
    if results["zoo"]:
        print(f"\n{'architecture':<18} {'upload':<13} {'converted':>9} {'max abs':>9} {'convert s':>9}")
        for row in results["zoo"]:
            if not row["converted"] and "error" in row:
                print(f"{row['architecture']:<18} {row['upload']:<13} {'no':>9}  {row['error'][:150]}")
                continue
            print(
                f"{row['architecture']:<18} {row['upload']:<13} {'yes' if row['converted'] else 'no':>9} "
                f"{row['parity_max_abs']:>9.2e} {row['conversion_s']:>9.1f}"
            )
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0, help="timing window per measurement")
    parser.add_argument("--zoo", action="store_true", help="also convert every torch_zoo architecture both ways")
    parser.add_argument("--json", type=Path, help="also write the results here")
    arguments = parser.parse_args()
    results = run(arguments.seconds, arguments.zoo)
    print(json.dumps(results, indent=2))
    if arguments.json:
        arguments.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
