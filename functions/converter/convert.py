"""Convert an uploaded network to ONNX and prove it computes what the original computes.

Pure: local files in, `model.onnx` and a JSON-serialisable report out; no AWS. The Lambda
handler (`app.py`) downloads the uploads, calls `convert_network`, and stores the result.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tensorgate_preprocessing.spec import PreprocessingSpec

from functions.converter import onnx_model, parity
from functions.converter.archives import DEFAULT_MAX_EXTRACTED_BYTES, DEFAULT_MAX_MEMBERS, ArchiveLimits
from functions.converter.declarations import (
    check_outputs_resolve,
    complete_preprocessing,
    input_requests,
    output_requests,
    parse_postprocessings,
    parse_preprocessing,
)
from functions.converter.errors import ConversionFailed, Reason, error_summary, listing
from functions.converter.formats import PYTORCH_FORMATS, LocatedModel, ModelFormat, locate_model
from functions.converter.graphs import keras_layer_of
from functions.converter.parity import ImageInput, OutputDifference, ParityCase, Tolerance
from functions.converter.signature import (
    DeclaredTensor,
    NameMap,
    Signature,
    check_runtime_shapes,
    check_spec_against_signature,
    resolve_spec,
    spec_entries,
    unknown_tensor,
)
from functions.converter.tensorflow_sources.common import Conversion, Reference, Requested, Requests

__all__ = [
    "DEFAULT_OPSET",
    "ConversionFailed",
    "ConversionOptions",
    "ConversionResult",
    "Reason",
    "convert_network",
]

DEFAULT_OPSET = 17
MAX_TF2ONNX_OPSET = 18  # the highest opset tf2onnx 1.17.0 targets
# The protobuf limit is 2 GiB for the whole file; beyond this much weight, write external data.
DEFAULT_LARGE_MODEL_BYTES = 1536 * 1024**2
DECLARED_FILES_DIRECTORY = "files"  # under the output directory, beside model.onnx


class ConversionOptions(BaseModel):
    """How to convert and how strictly to judge the result (defaults in docs/conversion.md)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    opset: int = Field(default=DEFAULT_OPSET, ge=13, le=MAX_TF2ONNX_OPSET)
    max_abs_diff: float = Field(default=parity.DEFAULT_MAX_ABS_DIFF, ge=0, le=1e6)
    max_rel_diff: float = Field(default=parity.DEFAULT_MAX_REL_DIFF, ge=0, le=1e6)
    node_name_mapping: dict[str, str] | None = None
    signature: str | None = Field(default=None, min_length=1, max_length=256)
    test_batch_size: int = Field(default=parity.DEFAULT_BATCH_SIZE, ge=1, le=64)
    seed: int = 0
    large_model: bool = Field(default=False, description="Force tf2onnx's large-model path and external data.")
    large_model_bytes: int = Field(default=DEFAULT_LARGE_MODEL_BYTES, ge=0)
    max_extracted_bytes: int = Field(default=DEFAULT_MAX_EXTRACTED_BYTES, ge=1)
    max_archive_members: int = Field(default=DEFAULT_MAX_MEMBERS, ge=1)

    @classmethod
    def from_network(cls, conversion_options: Mapping[str, Any] | None) -> ConversionOptions:
        """From a network's `conversion_options` (nulls mean defaults; worker-only keys ignored)."""
        given = {key: value for key, value in (conversion_options or {}).items() if value is not None}
        try:
            return cls.model_validate(given)
        except ValidationError as error:
            first = error.errors(include_url=False)[0]
            field_name = ".".join(str(part) for part in first["loc"])
            raise ConversionFailed(
                Reason.INVALID_OPTIONS,
                f"conversion_options.{field_name} {first['msg'].removeprefix('Value error, ')}.",
                {"field": f"conversion_options.{field_name}"},
            ) from None

    @property
    def tolerance(self) -> Tolerance:
        return Tolerance(max_abs_diff=self.max_abs_diff, max_rel_diff=self.max_rel_diff)


@dataclass
class ConversionResult:
    """Everything recorded on the network under `conversion` (see `to_dict`)."""

    format: str
    opset: int
    model_files: list[str]
    model_size: int
    model_sha256: str
    external_data: bool
    signature: Signature
    name_map: dict[str, str]
    parity: dict[str, Any]
    expected_output: dict[str, Any] | None
    spec_check: dict[str, Any] | None
    preprocessing: dict[str, Any] | None
    source: dict[str, Any]
    versions: dict[str, str]
    notes: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # Files the declarations name (mean files), copied to `output_dir/files/`, wherever they were uploaded.
    declared_files: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> list[dict[str, Any]]:
        return [tensor.to_dict() for tensor in self.signature.inputs]

    @property
    def outputs(self) -> list[dict[str, Any]]:
        return [tensor.to_dict() for tensor in self.signature.outputs]

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "opset": self.opset,
            "model": {
                "files": self.model_files,
                "size": self.model_size,
                "sha256": self.model_sha256,
                "external_data": self.external_data,
            },
            "signature": self.signature.to_dict(),
            "name_map": self.name_map,
            "declared_files": self.declared_files,
            "parity": self.parity,
            "expected_output": self.expected_output,
            "spec_check": self.spec_check,
            "preprocessing": self.preprocessing,
            "source": self.source,
            "versions": self.versions,
            "notes": self.notes,
            "timings": self.timings,
        }


def convert_network(
    source_dir: Path,
    output_dir: Path,
    *,
    framework: str | None = None,
    preprocessing: Any = None,
    postprocessings: Sequence[Any] | None = None,
    input_spec: Sequence[Any] | None = None,
    output_spec: Sequence[Any] | None = None,
    options: ConversionOptions | None = None,
) -> ConversionResult:
    """Convert the model uploaded in `source_dir` to `output_dir/model.onnx` and check it.

    `preprocessing`/`postprocessings` and `input_spec`/`output_spec` are the network's fields,
    as spec objects or plain dicts. Deterministic for the same files and options, so a duplicate
    event converts to the same bytes. Raises `ConversionFailed` for anything the user can fix.
    """
    options = options or ConversionOptions()
    timings: dict[str, float] = {}
    clock = time.perf_counter()
    preprocessing_spec = parse_preprocessing(preprocessing)
    postprocessing_specs = parse_postprocessings(postprocessings)
    input_entries = spec_entries(input_spec)
    output_entries = spec_entries(output_spec)
    workspace = Path(tempfile.mkdtemp(prefix="tensorgate-convert-"))
    try:
        limits = ArchiveLimits(max_bytes=options.max_extracted_bytes, max_members=options.max_archive_members)
        located = locate_model(Path(source_dir), workspace, framework, limits)
        test_inputs = parity.load_npz(located.test_input, located.test_input.name) if located.test_input else None
        expected = (
            parity.load_npz(located.test_expected_output, located.test_expected_output.name)
            if located.test_expected_output
            else None
        )
        if expected is not None and test_inputs is None:
            raise ConversionFailed(
                Reason.INVALID_TEST_DATA,
                f"{located.test_expected_output.name} was uploaded without test_input.npz; "  # type: ignore[union-attr]
                "expected outputs need the inputs they were computed from.",
            )
        requests = Requests(
            inputs=input_requests(preprocessing_spec),
            outputs=output_requests(postprocessing_specs)
            + [Requested(entry["name"], "output_spec") for entry in output_entries]
            + [Requested(key, "test_expected_output.npz") for key in (expected or {})],
            node_name_mapping=dict(options.node_name_mapping or located.node_name_mapping or {}),
            input_hints={entry["name"] for entry in input_entries} | set(test_inputs or {}),
            signature=options.signature,
            input_spec=input_entries,
        )
        large_model = options.large_model or located.total_bytes() > options.large_model_bytes
        timings["locate_s"] = _lap(clock)

        clock = time.perf_counter()
        conversion = _convert(located, requests, options, large_model, test_inputs)
        model = conversion.model
        opset = _default_opset(model)
        _refuse_unsupported_ops(model, opset, located.format)
        timings["convert_s"] = _lap(clock)

        clock = time.perf_counter()
        names = conversion.names
        signature = onnx_model.signature_of(model)
        _register_signature(names, signature)
        declared_inputs = resolve_spec(input_entries, "input", names, signature)
        declared_outputs = resolve_spec(output_entries, "output", names, signature)
        unknown_rank = conversion.unknown_rank
        onnx_model.apply_declared_shapes(
            model, {entry.onnx_name: entry.shape for entry in declared_inputs + declared_outputs}, unknown_rank
        )
        onnx_model.name_dynamic_dimensions(model, _declared_symbols(declared_inputs + declared_outputs), unknown_rank)
        external = large_model or onnx_model.weights_bytes(model) > options.large_model_bytes
        files = onnx_model.write_model(model, Path(output_dir), external_data=external)
        del model
        conversion.model = None  # type: ignore[assignment]  # free the proto before onnxruntime loads
        onnx_model.check_model(files[0])
        session = onnx_model.open_session(files[0])
        signature = _without_rank(
            onnx_model.signature_of(onnx.load(str(files[0]), load_external_data=False)), unknown_rank
        )
        check_outputs_resolve(requests.outputs, names, signature)
        static_problems = check_spec_against_signature(declared_inputs + declared_outputs, signature)
        if static_problems:
            raise ConversionFailed(
                Reason.SPEC_MISMATCH,
                "The model does not match its input_spec/output_spec: " + "; ".join(static_problems) + ".",
                {"problems": static_problems},
            )
        completed = (
            complete_preprocessing(preprocessing_spec, preprocessing, names, signature, located.mean_files)
            if preprocessing_spec is not None
            else None
        )
        declared_files = _keep_declared_files(preprocessing_spec, located.mean_files, Path(output_dir))
        timings["check_s"] = _lap(clock)

        clock = time.perf_counter()
        images = completed.images if completed else {}
        test_feeds = _test_feeds(test_inputs, names, signature) if test_inputs is not None else None
        generated = _generated_feeds(signature, declared_inputs, images, options)
        cases, spec_problems, symbols = _run_cases(
            session,
            conversion.reference,
            signature,
            generated,
            test_feeds,
            options.tolerance,
            declared_inputs + declared_outputs,
        )
        parity_report = _parity_report(conversion.reference, cases, options.tolerance)
        expected_report = (
            _expected_report(session, signature, names, test_feeds, expected, options.tolerance)
            if expected is not None and test_feeds is not None
            else None
        )
        timings["parity_s"] = _lap(clock)

        spec_report = None
        if declared_inputs or declared_outputs:
            spec_report = {
                "passed": not spec_problems,
                "problems": spec_problems,
                "symbols": symbols,
                "input_spec": [_declared(entry) for entry in declared_inputs],
                "output_spec": [_declared(entry) for entry in declared_outputs],
            }
        _raise_on_failures(parity_report, expected_report, spec_report)
        return ConversionResult(
            format=located.format.value,
            opset=opset,
            model_files=[path.name for path in files],
            model_size=sum(path.stat().st_size for path in files),
            model_sha256=onnx_model.sha256_of(files),
            external_data=len(files) > 1,
            signature=signature,
            name_map=names.to_dict(),
            parity=parity_report,
            expected_output=expected_report,
            spec_check=spec_report,
            preprocessing=completed.preprocessing if completed else None,
            source={
                "files": located.model_files,
                "framework": framework,
                "large_model": large_model,
                **conversion.source,
            },
            versions=_versions(located.format),
            notes=conversion.notes + (completed.notes if completed else []),
            timings=timings,
            declared_files=declared_files,
        )
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def _keep_declared_files(spec: PreprocessingSpec | None, found: Mapping[str, Path], output_dir: Path) -> list[str]:
    """Copy the files the preprocessing names to `output_dir/files/`: they are stored beside the model,
    so the worker finds them whether they came as multipart parts or inside an archive."""
    names = list(dict.fromkeys(spec.mean_files())) if spec is not None else []
    for name in names:
        target = output_dir / DECLARED_FILES_DIRECTORY / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found[name], target)
    return names


def _lap(started: float) -> float:
    return round(time.perf_counter() - started, 3)


def _convert(
    located: LocatedModel,
    requests: Requests,
    options: ConversionOptions,
    large_model: bool,
    test_inputs: Mapping[str, np.ndarray] | None,
) -> Conversion:
    if located.format is ModelFormat.ONNX:
        return _onnx_as_is(located, requests)
    if located.format in PYTORCH_FORMATS:
        from functions.converter import pytorch_sources

        return pytorch_sources.convert(located, requests, opset=options.opset, test_inputs=test_inputs)
    if located.format is ModelFormat.CAFFE:
        from functions.converter import caffe_sources

        return caffe_sources.convert(located, requests, opset=options.opset)
    from functions.converter import tensorflow_sources

    return tensorflow_sources.convert(located, requests, opset=options.opset, large_model=large_model)


def _onnx_as_is(located: LocatedModel, requests: Requests) -> Conversion:
    """An uploaded ONNX model: same checks, no reference to compare with, extra outputs allowed."""
    label = located.model_files[0]
    try:
        model = onnx.load(str(located.path), load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises several types on garbage
        raise ConversionFailed(
            Reason.CORRUPT_FILE, f"{label} is not a readable ONNX model: {_first_line(error)}", {"file": label}
        ) from None
    if not model.graph.node and not model.graph.output:
        raise ConversionFailed(Reason.CORRUPT_FILE, f"{label} is not an ONNX model (its graph is empty).")
    if onnx_model.check_external_data_locations(model, label):
        onnx.external_data_helper.load_external_data_for_model(model, str(located.path.parent))
    names = NameMap()
    signature = onnx_model.signature_of(model)
    for tensor in signature.inputs:
        names.add_tensor(tensor.name, "input")
    for tensor in signature.outputs:
        names.add_tensor(tensor.name, "output")
    for requested in requests.inputs:
        if names.resolve(requested.name, "input") is None:
            raise unknown_tensor(requested.name, requested.where, "input", signature.input_names)
    produced = onnx_model.produced_values(model)
    extra = []
    for requested in requests.outputs:
        if names.resolve(requested.name, "output") is not None:
            continue
        match = next((name for name in (requested.name, f"{requested.name}:0") if name in produced), None)
        if match is None:
            raise unknown_tensor(requested.name, requested.where, "output", signature.output_names + sorted(produced))
        extra.append(match)
        names.add_tensor(match, "output", [requested.name])
    onnx_model.add_outputs(model, extra)
    return Conversion(model=model, names=names, reference=None, source={"onnx": "uploaded as is"})


def _default_opset(model: onnx.ModelProto) -> int:
    return next((entry.version for entry in model.opset_import if entry.domain in ("", "ai.onnx")), 0)


def _refuse_unsupported_ops(model: onnx.ModelProto, opset: int, model_format: ModelFormat) -> None:
    unsupported = onnx_model.unsupported_ops(model)
    if not unsupported:
        return
    layers: dict[str, list[str]] = {}
    if model_format is not ModelFormat.ONNX:
        for op, nodes in unsupported.items():
            named = (keras_layer_of(node) for node in nodes)
            layers[op] = sorted({layer for layer in named if layer})
    described = [
        f"{op} ({len(nodes)} node{'s' if len(nodes) > 1 else ''}: {listing(nodes, 3)}"
        + (f"; layer{'s' if len(layers[op]) > 1 else ''} {listing(layers[op], 5)}" if layers.get(op) else "")
        + ")"
        for op, nodes in unsupported.items()
    ]
    if model_format is ModelFormat.ONNX:
        message = f"The ONNX model uses operators that ONNX opset {opset} does not define: {'; '.join(described)}."
    elif model_format in PYTORCH_FORMATS:
        message = (
            f"torch exported operators that ONNX opset {opset} does not define: {'; '.join(described)}. "
            "Replace the custom or third-party operators they come from with torch operations before saving."
        )
    else:
        hints = _later_opsets(list(unsupported), opset)
        where = "in the layers named" if any(layers.values()) else ""
        message = (
            f"The model uses TensorFlow operations that tf2onnx cannot convert to ONNX opset {opset}: "
            f"{'; '.join(described)}."
            + (f" {hints}" if hints else f" Replace those operations {where} with supported ones before exporting.")
        ).replace("  ", " ")
    details: dict[str, Any] = {"ops": {op: nodes[:20] for op, nodes in unsupported.items()}, "opset": opset}
    if any(layers.values()):
        details["layers"] = layers
    raise ConversionFailed(Reason.UNSUPPORTED_OPS, message, details)


def _later_opsets(ops: list[str], opset: int) -> str:
    """Name the opset from which tf2onnx converts an op, when raising conversion_options.opset helps."""
    try:
        from tf2onnx.handler import tf_op

        versions = tf_op.get_opsets().get("", [])
    except ImportError:
        return ""
    hints = []
    for op in ops:
        first = next((version for version, handlers in enumerate(versions) if op in handlers), None)
        if first is not None and opset < first <= MAX_TF2ONNX_OPSET:
            hints.append(f"{op} converts from opset {first}")
    return ("Set conversion_options.opset higher: " + ", ".join(hints) + ".") if hints else ""


def _register_signature(names: NameMap, signature: Signature) -> None:
    for tensor in signature.inputs:
        if names.resolve(tensor.name, "input") is None:
            names.add_tensor(tensor.name, "input")
    for tensor in signature.outputs:
        if names.resolve(tensor.name, "output") is None:
            names.add_tensor(tensor.name, "output")


def _without_rank(signature: Signature, unknown_rank: set[str]) -> Signature:
    """The signature with `shape: null` where the rank is unknown (the file must claim one)."""
    if not unknown_rank:
        return signature
    return Signature(
        inputs=tuple(replace(t, shape=None) if t.name in unknown_rank else t for t in signature.inputs),
        outputs=tuple(replace(t, shape=None) if t.name in unknown_rank else t for t in signature.outputs),
    )


def _declared_symbols(declared: list[DeclaredTensor]) -> dict[str, dict[int, str]]:
    symbols: dict[str, dict[int, str]] = {}
    for entry in declared:
        for axis, dim in enumerate(entry.shape):
            if isinstance(dim, str):
                symbols.setdefault(entry.onnx_name, {})[axis] = dim
    return symbols


def _declared(entry: DeclaredTensor) -> dict[str, Any]:
    return {"name": entry.name, "onnx_name": entry.onnx_name, "dtype": entry.dtype, "shape": list(entry.shape)}


# ---- running both models --------------------------------------------------------------------------


def _generated_feeds(
    signature: Signature,
    declared_inputs: list[DeclaredTensor],
    images: Mapping[str, ImageInput],
    options: ConversionOptions,
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(options.seed)
    declared = {entry.onnx_name: entry.shape for entry in declared_inputs}
    symbols: dict[str, int] = {}
    feeds = {}
    for tensor in signature.inputs:
        image = images.get(tensor.name)
        pictures = parity.preprocessed_images(image, options.test_batch_size, rng) if image else None
        if pictures is not None:
            feeds[tensor.name] = pictures
            continue
        shape = parity.input_shape(
            tensor, batch_size=options.test_batch_size, symbols=symbols, declared=declared.get(tensor.name), image=image
        )
        feeds[tensor.name] = parity.generate_input(tensor, shape, image, rng)
    return feeds


def _test_feeds(test_inputs: Mapping[str, np.ndarray], names: NameMap, signature: Signature) -> dict[str, np.ndarray]:
    feeds: dict[str, np.ndarray] = {}
    for key, array in test_inputs.items():
        onnx_name = names.resolve(key, "input")
        if onnx_name is None:
            raise unknown_tensor(key, "test_input.npz", "input", signature.input_names)
        tensor = signature.input(onnx_name)
        feeds[onnx_name] = _as_input_dtype(key, array, tensor.dtype)
    missing = [name for name in signature.input_names if name not in feeds]
    if missing:
        raise ConversionFailed(
            Reason.INVALID_TEST_DATA,
            f"test_input.npz has no array for the model input(s) {listing(missing)}.",
            {"missing": missing},
        )
    return feeds


def _as_input_dtype(key: str, array: np.ndarray, dtype: str) -> np.ndarray:
    if dtype in ("string", "undefined") or array.dtype.name == dtype:
        return array
    target = np.dtype(dtype)
    if not np.can_cast(array.dtype, target, casting="same_kind"):
        raise ConversionFailed(
            Reason.INVALID_TEST_DATA,
            f"test_input.npz's {key!r} holds {array.dtype} values but the model input takes {dtype}.",
            {"tensor": key},
        )
    return array.astype(target)


def _run_cases(
    session: Any,
    reference: Reference | None,
    signature: Signature,
    generated: dict[str, np.ndarray],
    test_feeds: dict[str, np.ndarray] | None,
    tolerance: Tolerance,
    declared: list[DeclaredTensor],
) -> tuple[list[ParityCase], list[str], dict[str, int]]:
    cases = []
    problems: list[str] = []
    symbols: dict[str, int] = {}
    runs = [("generated", generated)] + ([("test_input", test_feeds)] if test_feeds is not None else [])
    for label, feeds in runs:
        what = {"generated": "generated inputs", "test_input": "test_input.npz arrays"}[label]
        # Symbols must agree within one run; each run may bind them differently (batch sizes).
        found, _ = check_runtime_shapes(declared, feeds, {})
        if found:
            raise ConversionFailed(
                Reason.SPEC_MISMATCH,
                f"The {what} do not match input_spec: " + "; ".join(found) + ".",
                {"problems": found},
            )
        try:
            outputs = onnx_model.run_session(session, feeds, signature.output_names)
        except ConversionFailed as error:
            if label == "test_input":
                raise ConversionFailed(
                    Reason.INVALID_TEST_DATA, f"test_input.npz: {error.message}", error.details
                ) from None
            raise
        found, symbols = check_runtime_shapes(declared, {**feeds, **outputs}, {})
        problems.extend(f"with {what}: {problem}" for problem in found)
        case = ParityCase(inputs=label, input_shapes={name: list(array.shape) for name, array in feeds.items()})
        if reference is not None:
            try:
                expected = reference.run(feeds, signature.output_names)
            except ConversionFailed:
                raise
            except Exception as error:  # noqa: BLE001 - the original model failing is the user's to fix
                shapes = {name: list(array.shape) for name, array in feeds.items()}
                raise ConversionFailed(
                    Reason.RUNTIME_ERROR,
                    f"The original model fails on the {what} {shapes}: {_first_line(error)}",
                ) from None
            case.outputs = parity.compare_outputs(expected, outputs, tolerance)
        cases.append(case)
    return cases, problems, symbols


def _parity_report(reference: Reference | None, cases: list[ParityCase], tolerance: Tolerance) -> dict[str, Any]:
    if reference is None:
        return {
            "checked": False,
            "passed": True,
            "reason": "the model was uploaded as ONNX: there is no original to compare with",
            "tolerance": tolerance.to_dict(),
            "cases": [case.to_dict() for case in cases],
        }
    worst: dict[str, OutputDifference] = {}
    for case in cases:
        for output in case.outputs:
            current = worst.get(output.name)
            if current is None or _worse(output, current):
                worst[output.name] = output
    return {
        "checked": True,
        "passed": all(case.passed for case in cases),
        "reference": reference.description,
        "tolerance": tolerance.to_dict(),
        "rule": "max_abs <= max_abs_diff + max_rel_diff * scale, scale = max |reference output|",
        "outputs": [output.to_dict() for output in worst.values()],
        "cases": [case.to_dict() for case in cases],
    }


def _worse(candidate: OutputDifference, current: OutputDifference) -> bool:
    if candidate.passed != current.passed:
        return not candidate.passed
    return (candidate.max_abs or 0.0) > (current.max_abs or 0.0)


def _expected_report(
    session: Any,
    signature: Signature,
    names: NameMap,
    test_feeds: dict[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    tolerance: Tolerance,
) -> dict[str, Any]:
    by_onnx: dict[str, np.ndarray] = {}
    keys: dict[str, str] = {}
    for key, array in expected.items():
        onnx_name = names.resolve(key, "output")
        if onnx_name is None:
            raise unknown_tensor(key, "test_expected_output.npz", "output", signature.output_names)
        by_onnx[onnx_name] = array
        keys[onnx_name] = key
    outputs = onnx_model.run_session(session, test_feeds, list(by_onnx))
    differences = parity.compare_outputs(by_onnx, outputs, tolerance)
    for difference in differences:
        difference.name = keys[difference.name]
    return {
        "passed": all(difference.passed for difference in differences),
        "tolerance": tolerance.to_dict(),
        "outputs": [difference.to_dict() for difference in differences],
    }


def _raise_on_failures(
    parity_report: dict[str, Any], expected_report: dict[str, Any] | None, spec_report: dict[str, Any] | None
) -> None:
    if not parity_report["passed"]:
        failing = [
            _describe(output) for case in parity_report["cases"] for output in case["outputs"] if not output["passed"]
        ]
        raise ConversionFailed(
            Reason.PARITY_EXCEEDED,
            "The converted model's outputs differ from the original's beyond tolerance: "
            + "; ".join(dict.fromkeys(failing))
            + ". Raise conversion_options.max_rel_diff or max_abs_diff if this is expected.",
            {"parity": parity_report},
        )
    if expected_report is not None and not expected_report["passed"]:
        failing = [_describe(output) for output in expected_report["outputs"] if not output["passed"]]
        raise ConversionFailed(
            Reason.EXPECTED_OUTPUT_MISMATCH,
            "The converted model's outputs on test_input.npz do not match test_expected_output.npz: "
            + "; ".join(failing)
            + ".",
            {"expected_output": expected_report},
        )
    if spec_report is not None and not spec_report["passed"]:
        raise ConversionFailed(
            Reason.SPEC_MISMATCH,
            "The model does not match its input_spec/output_spec: " + "; ".join(spec_report["problems"]) + ".",
            {"spec_check": spec_report},
        )


def _describe(output: dict[str, Any]) -> str:
    if output.get("problem"):
        return f"{output['name']!r}: {output['problem']}"
    return (
        f"{output['name']!r} max abs diff {output['max_abs']:.3g} > allowed {output['allowed']:.3g} "
        f"(max rel diff {_number(output['max_rel'])} of output scale {output['scale']:.3g})"
    )


def _number(value: float | None) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3g}"


def _versions(model_format: ModelFormat) -> dict[str, str]:
    import onnxruntime

    found = {"onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    if model_format is ModelFormat.CAFFE:
        from functions.converter import caffe_sources

        found.update(caffe_sources.versions())
        return found
    if model_format in PYTORCH_FORMATS:
        from functions.converter import pytorch_sources

        found.update(pytorch_sources.versions())
    elif model_format is not ModelFormat.ONNX:
        from functions.converter import tensorflow_sources

        found.update(tensorflow_sources.versions())
    return found


def _first_line(error: BaseException) -> str:
    return error_summary(error)
