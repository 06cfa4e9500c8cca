"""Safe extraction of uploaded model archives (.zip, .tar.gz, .tgz): no escapes, no links, no bombs."""

from __future__ import annotations

import shutil
import stat
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from functions.converter.errors import ConversionFailed, Reason

ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz", ".tar")
DEFAULT_MAX_EXTRACTED_BYTES = 6 * 1024**3  # Lambda's /tmp is 10 GiB and the ONNX copy needs room too
DEFAULT_MAX_MEMBERS = 10_000
_COPY_CHUNK = 1024 * 1024
# Clutter from desktop archivers: never part of a model.
_IGNORED_PREFIXES = ("__MACOSX/",)


@dataclass(frozen=True)
class ArchiveLimits:
    max_bytes: int = DEFAULT_MAX_EXTRACTED_BYTES
    max_members: int = DEFAULT_MAX_MEMBERS


def is_archive(path: Path) -> bool:
    return path.name.lower().endswith(ARCHIVE_SUFFIXES)


def extract_archive(archive: Path, destination: Path, limits: ArchiveLimits | None = None) -> list[Path]:
    """Extract `archive` into `destination` (created) and return the regular files written.

    Refuses, naming the member: paths that are absolute or climb out with `..`, symbolic and hard
    links, devices and FIFOs, more than `max_members` entries, and more than `max_bytes` of
    content (counted while writing, so a header that lies about sizes does not help).
    """
    limits = limits or ArchiveLimits()
    destination.mkdir(parents=True, exist_ok=True)
    try:
        if archive.name.lower().endswith(".zip"):
            return _extract_zip(archive, destination, limits)
        return _extract_tar(archive, destination, limits)
    except ConversionFailed:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError) as error:
        shutil.rmtree(destination, ignore_errors=True)
        raise ConversionFailed(
            Reason.CORRUPT_FILE,
            f"The archive {archive.name!r} cannot be read: {error}.",
            {"file": archive.name},
        ) from None


def _extract_zip(archive: Path, destination: Path, limits: ArchiveLimits) -> list[Path]:
    written: list[Path] = []
    budget = _Budget(archive.name, limits.max_bytes)
    with zipfile.ZipFile(archive) as bundle:
        members = bundle.infolist()
        _check_member_count(archive.name, len(members), limits)
        declared = sum(member.file_size for member in members)
        if declared > limits.max_bytes:
            raise _too_big(archive.name, limits.max_bytes)
        for member in members:
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _unsafe(archive.name, member.filename, "is a symbolic link")
            # Many archivers store permissions without a file type; only an explicit other type is refused.
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise _unsafe(archive.name, member.filename, "is not a regular file or directory")
            target = _safe_target(archive.name, destination, member.filename)
            if target is None:
                continue
            if member.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            with bundle.open(member) as source, target.open("wb") as sink:
                budget.copy(source, sink)
            written.append(target)
    return written


def _extract_tar(archive: Path, destination: Path, limits: ArchiveLimits) -> list[Path]:
    written: list[Path] = []
    budget = _Budget(archive.name, limits.max_bytes)
    count = 0
    with tarfile.open(archive, mode="r:*") as bundle:
        # Streamed member by member: a tar bomb's index is never held whole in memory.
        for member in bundle:
            count += 1
            _check_member_count(archive.name, count, limits)
            if member.issym() or member.islnk():
                raise _unsafe(archive.name, member.name, "is a link")
            if not (member.isfile() or member.isdir()):
                raise _unsafe(archive.name, member.name, "is not a regular file or directory")
            target = _safe_target(archive.name, destination, member.name)
            if target is None:
                continue
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if member.size > limits.max_bytes - budget.used:
                raise _too_big(archive.name, limits.max_bytes)
            source = bundle.extractfile(member)
            if source is None:
                raise _unsafe(archive.name, member.name, "has no readable content")
            target.parent.mkdir(parents=True, exist_ok=True)
            with source, target.open("wb") as sink:
                budget.copy(source, sink)
            written.append(target)
    return written


class _Budget:
    """Counts bytes actually written across all members and stops at the limit."""

    def __init__(self, archive_name: str, max_bytes: int) -> None:
        self.archive_name = archive_name
        self.max_bytes = max_bytes
        self.used = 0

    def copy(self, source: IO[bytes], sink: IO[bytes]) -> None:
        while chunk := source.read(_COPY_CHUNK):
            self.used += len(chunk)
            if self.used > self.max_bytes:
                raise _too_big(self.archive_name, self.max_bytes)
            sink.write(chunk)


def _safe_target(archive_name: str, destination: Path, member_name: str) -> Path | None:
    """The path a member extracts to, None for ignorable clutter; refuses anything escaping."""
    name = member_name.replace("\\", "/")
    if name.startswith(_IGNORED_PREFIXES) or PurePosixPath(name).name.startswith("._"):
        return None
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _unsafe(archive_name, member_name, "is an absolute path")
    parts = [part for part in PurePosixPath(name).parts if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(archive_name, member_name, "climbs out of the archive with '..'")
    if not parts:
        return None
    target = destination.joinpath(*parts)
    root = destination.resolve()
    if not target.resolve().is_relative_to(root):
        raise _unsafe(archive_name, member_name, "resolves outside the archive")
    return target


def _check_member_count(archive_name: str, count: int, limits: ArchiveLimits) -> None:
    if count > limits.max_members:
        raise ConversionFailed(
            Reason.UNSAFE_ARCHIVE,
            f"The archive {archive_name!r} has more than {limits.max_members} entries; "
            "a model directory needs far fewer.",
            {"file": archive_name, "max_members": limits.max_members},
        )


def _unsafe(archive_name: str, member_name: str, why: str) -> ConversionFailed:
    return ConversionFailed(
        Reason.UNSAFE_ARCHIVE,
        f"The archive {archive_name!r} was refused: its entry {member_name!r} {why}.",
        {"file": archive_name, "member": member_name},
    )


def _too_big(archive_name: str, max_bytes: int) -> ConversionFailed:
    return ConversionFailed(
        Reason.UNSAFE_ARCHIVE,
        f"The archive {archive_name!r} expands to more than {max_bytes / 1024**3:.3g} GiB "
        f"({max_bytes} bytes), the limit for one network.",
        {"file": archive_name, "max_bytes": max_bytes},
    )


class ZipMembers:
    """A zip archive's regular files read one at a time by name, never unpacked under their names: what a dataset
    of many small images needs (writing each member to disk costs more than decoding it). The refusals are
    `extract_archive`'s: links and special files, absolute or climbing names, more than `max_members` entries,
    and more than `max_bytes` of content, counted as it is read."""

    def __init__(self, archive: Path, limits: ArchiveLimits | None = None) -> None:
        self._name = archive.name
        limits = limits or ArchiveLimits()
        self._budget = _Budget(archive.name, limits.max_bytes)
        try:
            self._bundle = zipfile.ZipFile(archive)
        except (zipfile.BadZipFile, OSError) as error:
            raise ConversionFailed(
                Reason.CORRUPT_FILE, f"The archive {archive.name!r} cannot be read: {error}.", {"file": archive.name}
            ) from None
        members = self._bundle.infolist()
        _check_member_count(archive.name, len(members), limits)
        if sum(member.file_size for member in members) > limits.max_bytes:
            raise _too_big(archive.name, limits.max_bytes)
        self._members: dict[str, zipfile.ZipInfo] = {}
        for member in members:
            mode = member.external_attr >> 16
            if stat.S_ISLNK(mode):
                raise _unsafe(archive.name, member.filename, "is a symbolic link")
            if stat.S_IFMT(mode) and not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise _unsafe(archive.name, member.filename, "is not a regular file or directory")
            name = _member_path(archive.name, member.filename)
            if name is not None and not member.is_dir():
                self._members[name] = member
        self.names = sorted(self._members)

    def read(self, name: str) -> bytes:
        try:
            with self._bundle.open(self._members[name]) as source:
                # One read of at most what the budget has left, plus one byte to see it overflow.
                data = source.read(self._budget.max_bytes - self._budget.used + 1)
                self._budget.used += len(data)
                if self._budget.used > self._budget.max_bytes:
                    raise _too_big(self._name, self._budget.max_bytes)
                return bytes(data)
        except (zipfile.BadZipFile, EOFError, zlib.error, OSError) as error:
            raise ConversionFailed(
                Reason.CORRUPT_FILE,
                f"The archive {self._name!r} cannot be read at {name!r}: {error}.",
                {"file": self._name, "member": name},
            ) from None

    def close(self) -> None:
        self._bundle.close()


def _member_path(archive_name: str, member_name: str) -> str | None:
    """A member's clean relative path (`a/b.jpg`), None for clutter and directories; refuses escaping names."""
    name = member_name.replace("\\", "/")
    if name.startswith(_IGNORED_PREFIXES) or name.rsplit("/", 1)[-1].startswith("._"):
        return None
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _unsafe(archive_name, member_name, "is an absolute path")
    # String operations, not PurePosixPath: a dataset's archive has a hundred thousand names to check.
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise _unsafe(archive_name, member_name, "climbs out of the archive with '..'")
    return "/".join(parts) or None
