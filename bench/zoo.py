"""The conversion zoo's full matrix: keras.applications architectures × upload formats.

Each cell saves the architecture (weights=None, BatchNorm statistics set from data, small input)
in the format with the library that writes it, converts it with `convert_network`, and reports
whether it converted, the parity max abs diff (or, for ONNX uploads, the test_expected_output
check's), the seconds building and saving it took and the conversion seconds (their sum is what
the cell costs the test suite). `make zoo` runs it; the test suite runs a subset.

    python bench/zoo.py [--architectures ResNet50,MobileNetV2] [--formats keras3.export,tflite] [--every]
                        [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from functions.converter.convert import ConversionFailed, convert_network  # noqa: E402
from tests.unit.converter import zoo  # noqa: E402


def cell(name: str, architecture: zoo.Architecture, model_format: str, workdir: Path) -> dict[str, Any]:
    upload = workdir / f"{name}-{model_format}" / "upload"
    upload.mkdir(parents=True)
    row: dict[str, Any] = {"architecture": name, "format": model_format}
    started = time.perf_counter()
    try:
        zoo.save(model_format, architecture, upload)
    except Exception as error:  # noqa: BLE001 - a library that cannot write the format is a result
        row.update(converted=False, error=f"saving failed: {type(error).__name__}: {str(error)[:300]}")
        return row
    row["save_seconds"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    try:
        result = convert_network(upload, upload.parent / "onnx")
    except ConversionFailed as error:
        row.update(converted=False, seconds=round(time.perf_counter() - started, 1), error=error.message[:300])
        return row
    report = result.parity if result.parity.get("checked") else (result.expected_output or {})
    outputs = report.get("outputs") or []
    row.update(
        converted=True,
        seconds=round(time.perf_counter() - started, 1),
        checked="parity" if result.parity.get("checked") else "test_expected_output",
        max_abs=max((output["max_abs"] for output in outputs), default=None),
        passed=report.get("passed"),
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--architectures", help="comma-separated keras.applications names (default: one per family)")
    parser.add_argument("--formats", default=",".join(zoo.FORMATS))
    parser.add_argument("--every", action="store_true", help="every keras.applications constructor, not one per family")
    parser.add_argument("--json", type=Path, help="also write the results here")
    arguments = parser.parse_args()
    known = zoo.every_architecture() if arguments.every or arguments.architectures else zoo.FAMILIES
    names = arguments.architectures.split(",") if arguments.architectures else list(known)
    formats = arguments.formats.split(",")
    rows = []
    header = f"{'architecture':<18} {'format':<22} {'converted':<9} {'max abs':>9} {'save s':>7} {'convert s':>9}"
    print(f"{header}  note", flush=True)
    for name in names:
        for model_format in formats:
            with tempfile.TemporaryDirectory(prefix="tensorgate-zoo-") as workdir:
                row = cell(name, known[name], model_format, Path(workdir))
            rows.append(row)
            max_abs = "" if row.get("max_abs") is None else f"{row['max_abs']:.2e}"
            save_seconds = "" if row.get("save_seconds") is None else f"{row['save_seconds']:.1f}"
            seconds = "" if row.get("seconds") is None else f"{row['seconds']:.1f}"
            note = row.get("error") or ("" if row.get("checked") == "parity" else row.get("checked", ""))
            converted = "yes" if row["converted"] else "NO"
            cells = f"{name:<18} {model_format:<22} {converted:<9} {max_abs:>9} {save_seconds:>7} {seconds:>9}"
            print(f"{cells}  {note}", flush=True)
    print(f"{sum(1 for row in rows if row['converted'])}/{len(rows)} converted")
    if arguments.json:
        arguments.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
