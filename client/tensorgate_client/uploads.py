"""A model on disk as a create request: the files of a multipart body, or one archive for the presigned POST.

Nothing here reads a file into memory: multipart bodies are streamed by requests-toolbelt's
MultipartEncoder, and a folder or file too large for one request is zipped to a temporary file
on disk, chunk by chunk, before it is streamed to the presigned POST.
"""

from __future__ import annotations

import os
import re
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from requests_toolbelt.multipart.encoder import MultipartEncoder, MultipartEncoderMonitor

from tensorgate_client.errors import TensorgateError

# The gateway passes a multipart body of at most 4.5 MiB: Lambda takes a 6 MiB event and a binary
# body reaches it base64-encoded (4/3 of its size). The headroom is for the event's other fields.
MULTIPART_BODY_LIMIT = 6 * 1024 * 1024 * 3 // 4
MULTIPART_HEADROOM = 64 * 1024
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
ARCHIVE_PEEK_BYTES = 64 * 1024 * 1024
STORE_ABOVE_BYTES = 16 * 1024 * 1024
FRAMEWORK_BY_SUFFIX = {
    ".onnx": "onnx",
    ".tflite": "tflite",
    ".keras": "keras",
    ".h5": "keras",
    ".hdf5": "keras",
    ".caffemodel": "nv-caffe-0.x-mod",
    ".prototxt": "nv-caffe-0.x-mod",
    ".pt": "pytorch",
    ".pth": "pytorch",
    ".pt2": "pytorch",
}
# The service stores flat names, or SavedModel variables as variables/<name>.
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_VARIABLES = "variables/"
# Sent, with the bytes so far and the total, as an upload goes.
Progress = Callable[[int, int], None]


class UnusableModelPath(TensorgateError):
    """The path given to create is not something the service can convert."""


@dataclass(frozen=True)
class ModelFiles:
    """What create sends: named files (a folder, one model file, extras), or one ready-made archive."""

    files: tuple[tuple[str, Path], ...] = ()
    archive: Path | None = None
    framework: str | None = None

    def total_bytes(self) -> int:
        if self.archive is not None:
            return self.archive.stat().st_size
        return sum(path.stat().st_size for _, path in self.files)

    def multipart_names_ok(self) -> bool:
        return self.archive is None and all(multipart_name_ok(name) for name, _ in self.files)


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def multipart_name_ok(name: str) -> bool:
    return bool(_SAFE_NAME.match(name.removeprefix(_VARIABLES))) and name != "manifest.json"


def collect(path: Path, extra_files: tuple[Path, ...] = ()) -> ModelFiles:
    """The files of `path`: a SavedModel (or v0.7 file set) folder, one model file, or an archive."""
    if not path.exists():
        raise UnusableModelPath(f"{path} does not exist.")
    extras = tuple((upload_name(extra), extra) for extra in extra_files)
    for _, extra in extras:
        if not extra.is_file():
            raise UnusableModelPath(f"{extra} is not a file.")
    if path.is_dir():
        found = [
            (item.relative_to(path).as_posix(), item)
            for item in sorted(path.rglob("*"))
            if item.is_file() and not any(part.startswith(".") for part in item.relative_to(path).parts)
        ]
        if not found:
            raise UnusableModelPath(f"The folder {path} holds no files.")
        files = _merge(found, extras)
        return ModelFiles(files=files, framework=_framework_of(name for name, _ in files))
    if is_archive(path):
        if extras:
            raise UnusableModelPath(
                f"{path.name} is an archive: put the extra files ({', '.join(n for n, _ in extras)}) inside it."
            )
        return ModelFiles(archive=path, framework=_framework_of(archive_names(path)))
    if path.stat().st_size == 0:
        raise UnusableModelPath(f"{path} is empty (0 bytes).")
    files = _merge([(upload_name(path), path)], extras)
    return ModelFiles(files=files, framework=_framework_of([path.name]))


def archive_names(path: Path) -> list[str]:
    """Member names of a zip (its directory) or of a tar.gz's first 64 MiB; empty when unreadable.

    Only to guess the framework: a tar.gz is read as a stream up to its first model file, and never
    further than 64 MiB of the archive, so a large archive is not decompressed before it is uploaded.
    """
    try:
        if path.name.lower().endswith(".zip"):
            with zipfile.ZipFile(path) as archive:
                return archive.namelist()
        names: list[str] = []
        with open(path, "rb") as raw, tarfile.open(fileobj=raw, mode="r|gz") as archive:
            for member in archive:
                names.append(member.name)
                if _framework_of([member.name]) is not None or member.name.endswith("saved_model.pb"):
                    break
                if raw.tell() > ARCHIVE_PEEK_BYTES:
                    break
        return names
    except (OSError, zipfile.BadZipFile, tarfile.TarError, EOFError):
        return []


def _framework_of(names: Any) -> str | None:
    """The framework a model file names by its suffix; None (the service's default) for TensorFlow."""
    names = list(names)
    if any(name.endswith(("saved_model.pb", "saved_model.pbtxt")) for name in names):
        return None
    for suffix, framework in FRAMEWORK_BY_SUFFIX.items():
        if any(name.lower().endswith(suffix) for name in names):
            return framework
    return None


def upload_name(path: Path) -> str:
    """A name the service stores: characters it refuses become '_'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", path.name)
    return name if name[:1].isalnum() else f"file{name}"


def _merge(found: list[tuple[str, Path]], extras: tuple[tuple[str, Path], ...]) -> tuple[tuple[str, Path], ...]:
    merged = dict(found)
    for name, extra in extras:
        merged[name] = extra
    return tuple(merged.items())


def multipart_body(
    fields: Mapping[str, str], files: tuple[tuple[str, Path], ...], progress: Progress | None = None
) -> Callable[[], tuple[Any, Mapping[str, str]]]:
    """A body factory (one per attempt: a streamed body cannot be rewound) for text fields then files."""

    def build() -> tuple[Any, Mapping[str, str]]:
        return streamed(list(fields.items()), files, progress)

    return build


def multipart_length(fields: Mapping[str, str], files: tuple[tuple[str, Path], ...]) -> int:
    """The exact size of the multipart body, computed from the files' sizes without reading them."""
    with ExitStack() as stack:
        parts = list(fields.items()) + [
            (name, (name, stack.enter_context(open(path, "rb")), "application/octet-stream")) for name, path in files
        ]
        return int(MultipartEncoder(fields=parts).len)


def streamed(
    fields: list[tuple[str, str]], files: tuple[tuple[str, Path], ...], progress: Progress | None
) -> tuple[Any, Mapping[str, str]]:
    """A MultipartEncoder over open files; requests reads it in chunks. The files close when it is collected."""
    parts: list[tuple[str, Any]] = list(fields)
    parts += [(name, (name, open(path, "rb"), "application/octet-stream")) for name, path in files]  # noqa: SIM115
    return monitored(MultipartEncoder(fields=parts), progress)


def monitored(encoder: MultipartEncoder, progress: Progress | None) -> tuple[Any, Mapping[str, str]]:
    """The body to send and its headers: the encoder itself, or a monitor reporting bytes read to `progress`."""
    total = int(encoder.len)
    if progress is None:
        return encoder, {"Content-Type": encoder.content_type}
    progress(0, total)
    monitor = MultipartEncoderMonitor(encoder, lambda watched: progress(min(watched.bytes_read, total), total))
    return monitor, {"Content-Type": monitor.content_type}


@contextmanager
def as_archive(model: ModelFiles, progress: Progress | None = None) -> Iterator[Path]:
    """The archive to upload: the given one, or the files zipped into a temporary file removed afterwards.

    Zipping streams each file through in 1 MiB chunks; `progress(done, total)` counts the files' bytes.
    """
    if model.archive is not None:
        yield model.archive
        return
    descriptor, name = tempfile.mkstemp(prefix="tensorgate-", suffix=".zip")
    os.close(descriptor)
    total, done = model.total_bytes(), 0
    try:
        with zipfile.ZipFile(name, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
            for member, path in model.files:
                size = path.stat().st_size
                entry = zipfile.ZipInfo(member, time.localtime(path.stat().st_mtime)[:6])
                # Graphs and text compress well; weights hardly do, so large files are stored as they are
                # and the zipping runs at disk speed.
                entry.compress_type = zipfile.ZIP_STORED if size > STORE_ABOVE_BYTES else zipfile.ZIP_DEFLATED
                with (
                    open(path, "rb") as source,
                    archive.open(entry, "w", force_zip64=size >= zipfile.ZIP64_LIMIT) as target,
                ):
                    while chunk := source.read(1 << 20):
                        target.write(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, total)
        yield Path(name)
    finally:
        os.unlink(name)


def archive_name(path: Path) -> str:
    """The name the presigned POST is signed for: the archive's own when the service takes it."""
    lowered = path.name.lower()
    suffix = next(suffix for suffix in ARCHIVE_SUFFIXES if lowered.endswith(suffix))
    stem = upload_name(Path(path.name[: -len(suffix)] or "model"))
    return f"{stem}{suffix}"
