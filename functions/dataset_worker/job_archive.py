"""The unpacker port of a batch job's archive of images: the model archives' refusals (converter/archives.py)."""

from __future__ import annotations

from pathlib import Path

from tensorgate.services.job_archives import ArchiveMembers, ArchiveRejected

from functions.converter.archives import ArchiveLimits, ZipMembers, extract_archive
from functions.converter.errors import ConversionFailed

# A job takes at most 10,000 items: an archive with far more entries is refused before anything is read.
MAX_MEMBERS = 20_000


class FolderMembers:
    """A tar's regular files, unpacked by the converter's safe extraction, by path relative to `root`."""

    def __init__(self, root: Path, files: list[Path]) -> None:
        self._root = root
        self.names = sorted(path.relative_to(root).as_posix() for path in files)

    def read(self, name: str) -> bytes:
        return (self._root / name).read_bytes()

    def close(self) -> None:
        pass


class ZipArchiveMembers:
    """A zip read member by member (never unpacked under its names), refusals as ZipMembers makes them."""

    def __init__(self, members: ZipMembers) -> None:
        self._members = members
        self.names = members.names

    def read(self, name: str) -> bytes:
        try:
            return self._members.read(name)
        except ConversionFailed as failure:
            raise ArchiveRejected(failure.message) from None

    def close(self) -> None:
        self._members.close()


def unpack(archive: Path, workdir: Path, limits: ArchiveLimits | None = None) -> ArchiveMembers:
    """Open `archive` with the model archives' checks (path traversal, links and special files, more entries
    or bytes than the limits); a refusal is ArchiveRejected with the converter's sentence."""
    limits = limits or ArchiveLimits(max_members=MAX_MEMBERS)
    try:
        if archive.name.lower().endswith(".zip"):
            return ZipArchiveMembers(ZipMembers(archive, limits))
        return FolderMembers(workdir, extract_archive(archive, workdir, limits))
    except ConversionFailed as failure:
        raise ArchiveRejected(failure.message) from None
