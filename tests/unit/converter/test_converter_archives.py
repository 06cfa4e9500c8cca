"""Archive extraction refuses escapes, links and bombs, and unpacks honest SavedModel archives."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest

from functions.converter.archives import ArchiveLimits, extract_archive
from functions.converter.errors import ConversionFailed, Reason


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, content in members.items():
            bundle.writestr(name, content)
    return path


def _tar(path: Path, members: list[tarfile.TarInfo], contents: dict[str, bytes] | None = None) -> Path:
    contents = contents or {}
    with tarfile.open(path, "w:gz") as bundle:
        for info in members:
            data = contents.get(info.name)
            if data is not None:
                info.size = len(data)
                bundle.addfile(info, io.BytesIO(data))
            else:
                bundle.addfile(info)
    return path


def _refused(archive: Path, destination: Path, limits: ArchiveLimits | None = None) -> ConversionFailed:
    with pytest.raises(ConversionFailed) as caught:
        extract_archive(archive, destination, limits)
    return caught.value


def test_extract_archive_zip_with_top_folder_extracts_every_file(tmp_path):
    archive = _zip(
        tmp_path / "model.zip",
        {"export/saved_model.pb": b"pb", "export/variables/variables.index": b"ix", "__MACOSX/._x": b"junk"},
    )

    written = extract_archive(archive, tmp_path / "out")

    assert sorted(path.relative_to(tmp_path / "out").as_posix() for path in written) == [
        "export/saved_model.pb",
        "export/variables/variables.index",
    ]
    assert (tmp_path / "out/export/saved_model.pb").read_bytes() == b"pb"


@pytest.mark.parametrize("name", ["../evil.txt", "export/../../evil.txt", "/etc/evil.txt", "C:/evil.txt", "..\\evil"])
def test_extract_archive_zip_slip_is_refused_naming_the_entry(tmp_path, name):
    archive = _zip(tmp_path / "slip.zip", {"saved_model.pb": b"pb", name: b"owned"})

    error = _refused(archive, tmp_path / "out")

    assert error.reason is Reason.UNSAFE_ARCHIVE
    assert repr(name) in error.message
    assert error.details["member"] == name
    assert not (tmp_path / "evil.txt").exists()
    assert not (tmp_path / "out").exists()


def test_extract_archive_zip_symlink_is_refused(tmp_path):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        info = zipfile.ZipInfo("variables")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(info, "/etc")

    error = _refused(archive, tmp_path / "out")

    assert error.reason is Reason.UNSAFE_ARCHIVE
    assert "symbolic link" in error.message


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE])
def test_extract_archive_tar_links_are_refused(tmp_path, kind):
    link = tarfile.TarInfo("variables")
    link.type = kind
    link.linkname = "/etc/passwd"
    archive = _tar(tmp_path / "link.tar.gz", [link])

    error = _refused(archive, tmp_path / "out")

    assert error.reason is Reason.UNSAFE_ARCHIVE
    assert "'variables' is a link" in error.message


def test_extract_archive_tar_device_is_refused(tmp_path):
    device = tarfile.TarInfo("dev")
    device.type = tarfile.CHRTYPE
    archive = _tar(tmp_path / "device.tgz", [device])

    assert _refused(archive, tmp_path / "out").reason is Reason.UNSAFE_ARCHIVE


def test_extract_archive_zip_bomb_is_refused_before_writing(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", {"variables.data-00000-of-00001": b"\0" * 5_000_000})
    assert archive.stat().st_size < 50_000  # compresses a hundredfold: a bomb in miniature

    error = _refused(archive, tmp_path / "out", ArchiveLimits(max_bytes=1_000_000))

    assert error.reason is Reason.UNSAFE_ARCHIVE
    assert "expands to more than" in error.message


def test_extract_archive_zip_lying_about_sizes_is_stopped_while_writing(tmp_path):
    archive = _zip(tmp_path / "liar.zip", {"a.bin": b"\0" * 400_000, "b.bin": b"\0" * 400_000})
    # Rewrite the central directory to declare tiny sizes: only the byte count while writing catches it.
    data = bytearray(archive.read_bytes())
    with zipfile.ZipFile(archive) as bundle:
        infos = bundle.infolist()
    for info in infos:
        info.file_size = 10
    central = data.find(b"PK\x01\x02")
    for _ in infos:
        data[central + 24 : central + 28] = (10).to_bytes(4, "little")
        central = data.find(b"PK\x01\x02", central + 4)
    archive.write_bytes(bytes(data))

    error = _refused(archive, tmp_path / "out", ArchiveLimits(max_bytes=100_000))

    assert error.reason in (Reason.UNSAFE_ARCHIVE, Reason.CORRUPT_FILE)
    total = (
        sum(path.stat().st_size for path in (tmp_path / "out").rglob("*") if path.is_file())
        if (tmp_path / "out").exists()
        else 0
    )
    assert total <= 100_000


def test_extract_archive_tar_bomb_is_refused(tmp_path):
    member = tarfile.TarInfo("variables.data-00000-of-00001")
    archive = _tar(tmp_path / "bomb.tar.gz", [member], {member.name: b"\0" * 3_000_000})

    error = _refused(archive, tmp_path / "out", ArchiveLimits(max_bytes=1_000_000))

    assert error.reason is Reason.UNSAFE_ARCHIVE


def test_extract_archive_too_many_members_is_refused(tmp_path):
    archive = _zip(tmp_path / "many.zip", {f"f{index}": b"x" for index in range(20)})

    error = _refused(archive, tmp_path / "out", ArchiveLimits(max_members=10))

    assert error.reason is Reason.UNSAFE_ARCHIVE
    assert "more than 10 entries" in error.message


def test_extract_archive_garbage_is_a_corrupt_file(tmp_path):
    archive = tmp_path / "model.zip"
    archive.write_bytes(b"this is not a zip file at all")

    error = _refused(archive, tmp_path / "out")

    assert error.reason is Reason.CORRUPT_FILE
    assert "model.zip" in error.message
