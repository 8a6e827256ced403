"""A person's files into the content store for a run, and a run's artifacts out of it.

Upload: `--file PATH` names a file (stored under its own name) or a directory (its files
stored under the directory's name, as `cp -r` would place them). Download: every artifact is
written under one directory and nowhere else. Names are checked again here (a record could
come from anywhere), parents are opened one at a time without following links, and each
file is written to a new name and renamed into place, so a link or hard link already in
the directory is replaced, never written through; and replaced only when the person asked
(`overwrite`), as a dotfile is written only when a glob names it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tether.contracts.files import (
    DIGEST_PREFIX,
    MAX_FILE_BYTES,
    MAX_FILE_SETTING,
    MAX_FILES,
    ArtifactRecord,
    SkippedArtifact,
    name_problem,
)
from tether.store.content import ContentStore
from tether.store.errors import BlobNotFound, StoreCorrupt
from tether.store.globs import hidden, named
from tether.store.streams import put_stream, read_chunks


class ArtifactExists(FileExistsError):
    """A download would replace a file already in its directory; nothing was written."""

    def __init__(self, path: str, where: Path) -> None:
        super().__init__(f"{where / path} already exists, and nothing was written: download with "
                         "overwrite=True to replace what is there")
        self.path = path
        self.where = where


class FilesRefused(ValueError):
    """A path given to a run can't be: missing, not a regular file, too big, badly named."""


def upload_paths(blobs: ContentStore, paths: Sequence[str | os.PathLike[str]], *,
                 max_bytes: int = MAX_FILE_BYTES) -> dict[str, str]:
    """Stores the files and directories given, each streamed (never read whole); returns the
    run input's `files` mapping. A file over `max_bytes` (TETHER_MAX_FILE_MB) is refused."""
    files: dict[str, str] = {}
    for given in paths:
        for name, path in _files_of(Path(given)):
            problem = name_problem(name)
            if problem:
                raise FilesRefused(f"{given}: {problem}")
            if name in files:
                raise FilesRefused(f"two of the files given would both be /workspace/{name}")
            size = path.stat().st_size
            if size > max_bytes:
                raise FilesRefused(f"{path} is {size} bytes; a run's file may have {max_bytes}"
                                   f" ({MAX_FILE_SETTING}={max_bytes >> 20}: raise it, on the"
                                   " workers too, for bigger files)")
            with path.open("rb") as source:
                files[name] = DIGEST_PREFIX + put_stream(blobs, source)
    if len(files) > MAX_FILES:
        raise FilesRefused(f"{len(files)} files given; a run may be given at most {MAX_FILES}")
    return files


def _files_of(path: Path) -> Iterable[tuple[str, Path]]:
    """(name in the workspace, path here) of each file `path` stands for."""
    if not path.exists():
        raise FilesRefused(f"{path}: no such file or directory")
    if path.is_file():
        yield path.name, path
        return
    if not path.is_dir():
        raise FilesRefused(f"{path} is not a regular file or a directory")
    base = path.resolve().name
    for directory, dirs, names in os.walk(path):
        dirs.sort()
        for name in sorted(names + [d for d in dirs if Path(directory, d).is_symlink()]):
            found = Path(directory, name)
            # A link inside a directory may lead anywhere (a key, another tree): it is given
            # only when named on its own.
            if found.is_symlink():
                raise FilesRefused(f"{found} is a symbolic link; give its target with --file if it is meant")
            if not found.is_file():
                raise FilesRefused(f"{found} is not a regular file")
            yield f"{base}/{found.relative_to(path).as_posix()}", found


@dataclass
class Downloaded:
    written: list[Path] = field(default_factory=list)
    skipped: list[SkippedArtifact] = field(default_factory=list)


def write_artifacts(blobs: ContentStore, records: Sequence[ArtifactRecord],
                    directory: str | os.PathLike[str], *, globs: Sequence[str] | None = None,
                    overwrite: bool = False) -> Downloaded:
    """Writes each artifact under `directory`; those that can't be are skipped, with why.

    With `globs`, only the artifacts they match; a dotfile only where a glob names it
    (`tether.store.globs`). A file already in the directory refuses the whole download,
    before anything is written, unless `overwrite`: a run must not replace a person's files
    unasked."""
    root = Path(directory)
    done = Downloaded()
    chosen = []
    for record in records:
        if globs is not None and not named(globs, record.path, dotted=True):
            continue  # not asked for
        problem = name_problem(record.path, what="artifact name")
        if problem is None and hidden(record.path) and not named(globs or [], record.path):
            problem = f"a dotfile: written only when a glob names it (--glob {record.path!r})"
        if problem:
            done.skipped.append(SkippedArtifact(path=record.path, reason=problem))
        else:
            chosen.append(record)
    root.mkdir(parents=True, exist_ok=True)
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if not overwrite:
            for record in chosen:
                if _exists_beneath(root_fd, record.path):
                    raise ArtifactExists(record.path, root)
        for record in chosen:
            try:
                size, chunks = read_chunks(blobs, record.sha256)
                if size != record.size:
                    raise Mismatch("the stored bytes do not match its record")
                # Streamed to a new name and renamed into place only once every byte matched
                # its digest: an altered blob leaves nothing behind.
                _write_beneath(root_fd, record.path, _matching(chunks, record))
            except (BlobNotFound, StoreCorrupt, Mismatch, ValueError) as error:
                done.skipped.append(SkippedArtifact(path=record.path, reason=str(error)))
                continue
            except OSError as error:
                reason = f"not written: {error.strerror or error} (a link or a directory in the way?)"
                done.skipped.append(SkippedArtifact(path=record.path, reason=reason))
                continue
            done.written.append(root / record.path)
    finally:
        os.close(root_fd)
    return done


class Mismatch(ValueError):
    """A stored blob whose bytes are not what its record says."""


def _matching(chunks: Iterable[bytes], record: ArtifactRecord) -> Iterator[bytes]:
    """The blob's chunks, held to its record's size and digest at the end."""
    digest, size = hashlib.sha256(), 0
    for chunk in chunks:
        digest.update(chunk)
        size += len(chunk)
        yield chunk
    if size != record.size or digest.hexdigest() != record.sha256:
        raise Mismatch("the stored bytes do not match its record")


def _exists_beneath(root_fd: int, name: str) -> bool:
    """Whether a download would replace something at `name`, its parents opened as the write
    opens them: a link or a file in a parent's place fails the write, so replaces nothing."""
    parts = name.split("/")
    directory = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            try:
                inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            except OSError:
                return False
            os.close(directory)
            directory = inner
        try:
            os.stat(parts[-1], dir_fd=directory, follow_symlinks=False)
        except FileNotFoundError:
            return False
        return True
    finally:
        os.close(directory)


def _write_beneath(root_fd: int, name: str, data: Iterable[bytes]) -> None:
    parts = name.split("/")
    directory = os.dup(root_fd)
    try:
        for part in parts[:-1]:
            try:
                os.mkdir(part, 0o755, dir_fd=directory)
            except FileExistsError:
                pass
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=directory)
            os.close(directory)
            directory = inner
        temporary = f".{parts[-1]}.tether-{os.urandom(4).hex()}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644, dir_fd=directory)
        try:
            with os.fdopen(fd, "wb") as f:
                for chunk in data:
                    f.write(chunk)
            os.replace(temporary, parts[-1], src_dir_fd=directory, dst_dir_fd=directory)
        except BaseException:
            os.unlink(temporary, dir_fd=directory)
            raise
    finally:
        os.close(directory)
