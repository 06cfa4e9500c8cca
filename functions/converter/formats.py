"""Which model was uploaded: format detection from the files (and `framework`), archives unpacked."""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

from functions.converter.archives import ArchiveLimits, extract_archive, is_archive
from functions.converter.errors import ConversionFailed, Reason, listing

TEST_INPUT_NAMES = ("test_input.npz",)
TEST_EXPECTED_OUTPUT_NAMES = ("test_expected_output.npz", "test_expected_out.npz", "test_output.npz")
NODE_NAME_MAPPING_NAME = "node_name_mapping.json"
# Files TensorFlow and Keras write next to saved_model.pb that are not models themselves.
_SAVED_MODEL_COMPANIONS = {"keras_metadata.pb", "fingerprint.pb"}
_IGNORED_NAMES = {"manifest.json", ".DS_Store"}
# Mean files a preprocessing may name: NumPy arrays, or Caffe's BlobProto (`imagenet_mean.binaryproto`).
MEAN_FILE_SUFFIXES = (".npy", ".binaryproto")
_SHARD = re.compile(r"^(?P<prefix>.+)\.data-(?P<index>\d{5})-of-(?P<count>\d{5})$")


class ModelFormat(StrEnum):
    SAVED_MODEL = "saved_model"
    KERAS = "keras"
    KERAS_H5 = "keras_h5"
    FROZEN_GRAPH = "frozen_graph"
    TFLITE = "tflite"
    ONNX = "onnx"
    CAFFE = "caffe"
    TORCHSCRIPT = "torchscript"
    TORCH_EXPORT = "torch_export"


# `framework` values (the v0.7 names and ours) and the formats each admits.
_TENSORFLOW_FORMATS = (
    ModelFormat.SAVED_MODEL,
    ModelFormat.KERAS,
    ModelFormat.KERAS_H5,
    ModelFormat.FROZEN_GRAPH,
    ModelFormat.TFLITE,
)
FRAMEWORK_FORMATS: dict[str, tuple[ModelFormat, ...]] = {
    "tensorflow-1.x": _TENSORFLOW_FORMATS,
    "tensorflow-2.x": _TENSORFLOW_FORMATS,
    "tensorflow": _TENSORFLOW_FORMATS,
    "keras": (ModelFormat.KERAS, ModelFormat.KERAS_H5, ModelFormat.SAVED_MODEL),
    "tflite": (ModelFormat.TFLITE,),
    "onnx": (ModelFormat.ONNX,),
    "nv-caffe-0.x-mod": (ModelFormat.CAFFE,),
    "caffe": (ModelFormat.CAFFE,),
    "pytorch": (ModelFormat.TORCHSCRIPT, ModelFormat.TORCH_EXPORT),
}
# TorchScript (torch.jit.save) and torch.export programs (torch.export.save) are zip files of their
# own; pytorch_sources reads which one a .pt/.pth holds from its members.
TORCHSCRIPT_SUFFIXES = (".pt", ".pth")
TORCH_EXPORT_SUFFIXES = (".pt2",)
PYTORCH_FORMATS = (ModelFormat.TORCHSCRIPT, ModelFormat.TORCH_EXPORT)


@dataclass
class LocatedModel:
    """The model to convert and the companion files found with it."""

    format: ModelFormat
    path: Path
    model_files: list[str]
    mean_files: dict[str, Path] = field(default_factory=dict)
    test_input: Path | None = None
    test_expected_output: Path | None = None
    node_name_mapping: dict[str, str] | None = None
    all_files: list[str] = field(default_factory=list)
    weights: Path | None = None  # Caffe: the .caffemodel trained with the prototxt in `path`

    def total_bytes(self) -> int:
        if self.path.is_dir():
            return sum(item.stat().st_size for item in self.path.rglob("*") if item.is_file())
        return self.path.stat().st_size


@dataclass(frozen=True)
class _Candidate:
    format: ModelFormat
    path: Path
    label: str


def locate_model(
    source_dir: Path, workspace: Path, framework: str | None, limits: ArchiveLimits | None = None
) -> LocatedModel:
    """Find the one model among the uploaded files; archives are extracted into `workspace`.

    Raises `ConversionFailed` when no model file is present, when several are and `framework`
    does not tell them apart, or when `framework` names something the converter cannot read.
    """
    allowed = _allowed_formats(framework)
    files = _collect_files(source_dir, workspace, limits)
    names = sorted(label for label, _ in files)
    candidates = _candidates(files)
    kept = [candidate for candidate in candidates if candidate.format in allowed]
    if not kept:
        if candidates:
            found = listing([f"{c.label} ({c.format.value})" for c in candidates])
            raise ConversionFailed(
                Reason.NO_MODEL,
                f"framework {framework!r} was declared but the uploaded model is not one it accepts: "
                f"found {found}; {framework!r} accepts {', '.join(f.value for f in allowed)}.",
                {"files": names, "framework": framework},
            )
        raise ConversionFailed(
            Reason.NO_MODEL,
            "No model file was found among the uploaded files "
            f"({listing(names)}). Upload saved_model.pb (with variables.index and "
            "variables.data-*), a SavedModel archive (.zip/.tar.gz), a Keras .keras or .h5 file, "
            "a frozen graph .pb with node_name_mapping, a .tflite or an .onnx file, a PyTorch "
            "TorchScript .pt or torch.export .pt2 file, or a Caffe deploy.prototxt with its .caffemodel.",
            {"files": names},
        )
    if len(kept) > 1:
        raise ConversionFailed(
            Reason.AMBIGUOUS_MODEL,
            f"Several models were uploaded ({listing([f'{c.label} ({c.format.value})' for c in kept])}); "
            "upload one, or set framework to choose between formats.",
            {"files": names, "candidates": [c.label for c in kept]},
        )
    chosen = kept[0]
    path = chosen.path
    model_files = [chosen.label]
    if chosen.format is ModelFormat.SAVED_MODEL:
        path, model_files = _saved_model_directory(chosen, files, workspace)
    located = LocatedModel(format=chosen.format, path=path, model_files=model_files, all_files=names)
    if chosen.format is ModelFormat.CAFFE:
        located.weights = _caffe_weights(chosen, files, located.model_files)
    for label, item in files:
        base = item.name
        if base.endswith(MEAN_FILE_SUFFIXES):
            located.mean_files[base] = item
        elif base in TEST_INPUT_NAMES:
            located.test_input = item
        elif base in TEST_EXPECTED_OUTPUT_NAMES:
            located.test_expected_output = item
        elif base == NODE_NAME_MAPPING_NAME:
            located.node_name_mapping = _read_node_name_mapping(item, label)
    return located


def _allowed_formats(framework: str | None) -> tuple[ModelFormat, ...]:
    if framework is None or framework == "":
        return tuple(ModelFormat)
    key = framework.strip().lower()
    if key not in FRAMEWORK_FORMATS:
        raise ConversionFailed(
            Reason.UNSUPPORTED_FORMAT,
            f"framework {framework!r} cannot be converted to ONNX here; use one of {', '.join(FRAMEWORK_FORMATS)}.",
            {"framework": framework, "supported": list(FRAMEWORK_FORMATS)},
        )
    return FRAMEWORK_FORMATS[key]


def _collect_files(source_dir: Path, workspace: Path, limits: ArchiveLimits | None) -> list[tuple[str, Path]]:
    """(label, path) of every uploaded regular file, archives replaced by their content."""
    if not source_dir.is_dir():
        raise ConversionFailed(Reason.NO_MODEL, f"The upload directory {source_dir} does not exist.")
    collected: list[tuple[str, Path]] = []
    for item in sorted(source_dir.rglob("*")):
        if item.is_symlink() or not item.is_file() or item.name in _IGNORED_NAMES:
            continue
        label = item.relative_to(source_dir).as_posix()
        if is_archive(item):
            destination = workspace / "archives" / re.sub(r"[^A-Za-z0-9._-]", "_", label)
            for extracted in extract_archive(item, destination, limits):
                if extracted.name in _IGNORED_NAMES:
                    continue
                inner = extracted.relative_to(destination).as_posix()
                collected.append((f"{label}:{inner}", extracted))
        else:
            collected.append((label, item))
    return collected


def _candidates(files: list[tuple[str, Path]]) -> list[_Candidate]:
    candidates: list[_Candidate] = []
    saved_model_dirs: set[Path] = set()
    for label, item in files:
        name = item.name.lower()
        if name in ("saved_model.pb", "saved_model.pbtxt"):
            if item.parent in saved_model_dirs:
                continue  # both .pb and .pbtxt: TensorFlow reads the .pb
            saved_model_dirs.add(item.parent)
            candidates.append(_Candidate(ModelFormat.SAVED_MODEL, item, label))
    for label, item in files:
        name = item.name.lower()
        suffix = item.suffix.lower()
        if suffix == ".keras":
            candidates.append(_Candidate(ModelFormat.KERAS, item, label))
        elif suffix in (".h5", ".hdf5"):
            candidates.append(_Candidate(ModelFormat.KERAS_H5, item, label))
        elif suffix == ".tflite":
            candidates.append(_Candidate(ModelFormat.TFLITE, item, label))
        elif suffix == ".onnx":
            candidates.append(_Candidate(ModelFormat.ONNX, item, label))
        elif suffix == ".prototxt" and not name.startswith("solver"):
            candidates.append(_Candidate(ModelFormat.CAFFE, item, label))
        elif suffix in TORCHSCRIPT_SUFFIXES:
            candidates.append(_Candidate(ModelFormat.TORCHSCRIPT, item, label))
        elif suffix in TORCH_EXPORT_SUFFIXES:
            candidates.append(_Candidate(ModelFormat.TORCH_EXPORT, item, label))
        elif suffix in (".pb", ".pbtxt", ".graph") and name not in ("saved_model.pb", "saved_model.pbtxt"):
            if name in _SAVED_MODEL_COMPANIONS or any(parent in saved_model_dirs for parent in item.parents):
                continue
            candidates.append(_Candidate(ModelFormat.FROZEN_GRAPH, item, label))
    return candidates


def _saved_model_directory(
    chosen: _Candidate, files: list[tuple[str, Path]], workspace: Path
) -> tuple[Path, list[str]]:
    """A SavedModel directory TensorFlow can load, built from flat uploads when needed.

    The v0.7 client sends `variables.index` and `variables.data-*` next to `saved_model.pb`;
    TensorFlow wants them under `variables/`. They are linked (or copied) into the workspace.
    """
    directory = chosen.path.parent
    nested = directory / "variables"
    flat = {item.name: (label, item) for label, item in files if item.parent == directory}
    variables = {name: entry for name, entry in flat.items() if name.startswith("variables.")}
    if nested.is_dir():
        present = {item.name for item in nested.iterdir() if item.is_file()}
        _check_variable_files(present, "variables/")
        used = [chosen.label] + [label for label, item in files if item.parent == nested]
        return directory, used
    if not variables:
        return directory, [chosen.label]
    _check_variable_files(set(variables), "")
    target = workspace / "saved_model"
    (target / "variables").mkdir(parents=True, exist_ok=True)
    _link_or_copy(chosen.path, target / chosen.path.name)
    for name, (_label, item) in variables.items():
        _link_or_copy(item, target / "variables" / name)
    for companion in ("assets", "assets.extra"):
        if (directory / companion).is_dir():
            shutil.copytree(directory / companion, target / companion, dirs_exist_ok=True)
    return target, [chosen.label] + sorted(label for label, _ in variables.values())


def _check_variable_files(present: set[str], prefix: str) -> None:
    """Name the missing half of a variables checkpoint instead of TensorFlow's cryptic error."""
    shards = [match for name in present if (match := _SHARD.match(name))]
    has_index = any(name.endswith(".index") for name in present)
    if shards and not has_index:
        raise ConversionFailed(
            Reason.MISSING_FILE,
            f"The SavedModel's {prefix}variables.index is missing; upload it with the "
            f"{prefix}variables.data-* file(s).",
            {"missing": [f"{prefix}variables.index"]},
        )
    if has_index and not shards:
        raise ConversionFailed(
            Reason.MISSING_FILE,
            f"The SavedModel's {prefix}variables.data-00000-of-00001 (or its shards) is missing; "
            f"upload it with {prefix}variables.index.",
            {"missing": [f"{prefix}variables.data-00000-of-00001"]},
        )
    for match in shards:
        count = int(match.group("count"))
        expected = {f"{match.group('prefix')}.data-{index:05d}-of-{count:05d}" for index in range(count)}
        missing = sorted(expected - present)
        if missing:
            raise ConversionFailed(
                Reason.MISSING_FILE,
                f"The SavedModel's variables are sharded in {count} files but "
                f"{listing([prefix + name for name in missing])} are missing.",
                {"missing": [prefix + name for name in missing]},
            )


def _caffe_weights(chosen: _Candidate, files: list[tuple[str, Path]], model_files: list[str]) -> Path:
    """The one .caffemodel uploaded with a Caffe prototxt; its label joins `model_files`."""
    weights = [(label, item) for label, item in files if item.suffix.lower() == ".caffemodel"]
    if not weights:
        raise ConversionFailed(
            Reason.MISSING_FILE,
            f"{chosen.label} needs the trained weights it describes: upload the .caffemodel with it "
            "(snapshot.caffemodel, for example).",
            {"missing": ["*.caffemodel"]},
        )
    if len(weights) > 1:
        raise ConversionFailed(
            Reason.AMBIGUOUS_MODEL,
            f"Several .caffemodel files were uploaded ({listing([label for label, _ in weights])}); upload the one "
            f"trained with {chosen.label}.",
            {"candidates": [label for label, _ in weights]},
        )
    model_files.append(weights[0][0])
    return weights[0][1]


def _link_or_copy(source: Path, target: Path) -> None:
    if target.exists():
        target.unlink()
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _read_node_name_mapping(path: Path, label: str) -> dict[str, str]:
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConversionFailed(Reason.CORRUPT_FILE, f"{label} is not valid JSON: {error}.", {"file": label}) from None
    if not isinstance(mapping, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in mapping.items()
    ):
        raise ConversionFailed(
            Reason.INVALID_DECLARATION,
            f'{label} must be a JSON object of names to TensorFlow tensor names, like {{"x": "ns/in_x:0"}}.',
            {"file": label},
        )
    return mapping
