"""Writing files so that nothing is ever half-written, and knowing when one was damaged since.

The course's one atomic writer: every file it writes -- checkpoints, exports, their JSON records,
cached judges -- goes to a temporary file in the same folder, is flushed to disk, and only then
renamed onto its name (``os.replace`` is atomic on POSIX and Windows). A reader sees the old file or
the new one, never a mix; an error or a kill mid-write leaves the old file as it was (and at worst
a hidden ``.NAME.*.tmp`` file, which :func:`stale_temp_files` finds). A symlinked path updates its
target; a new file gets the user's umask, a replaced one keeps its mode.

Every file :func:`atomic_save` writes ends with a *checksum* of everything before it (in the zip
archive's comment, where ``torch.load`` does not look); :func:`read_saved` checks it before trusting
the file, so a bit flipped on disk or in a copy is a clear error instead of silent NaNs. Files
written before it carry a checksum of their tensors instead (:func:`verify_tensor_checksum`), or,
the oldest, none.

:func:`exclusive_lock` lets one process at a time make a file that several may ask for at once.
"""
from __future__ import annotations

import contextlib
import glob
import hashlib
import json
import os
import pickle
import struct
import tempfile
import time
import warnings
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

CHECKSUM_LABEL = b"course_lib checksum"  # begins the archive comment that holds a file's checksum
FILE_CHECKSUM_MAGIC = CHECKSUM_LABEL + b" 2: sha256 of 4 KiB blocks' 64-bit word sums: "
BLOCK_BYTES = 4096
CHUNK_BYTES = 128 * BLOCK_BYTES  # read at a time when computing a checksum: fits the CPU's L2 cache
WORD = np.dtype("<i8")  # 64-bit little-endian words, whatever the machine's byte order
DIGEST_CHARS = 64  # a SHA-256 in hex, the file's last bytes
END_OF_ZIP = struct.Struct("<4s16xH")  # a zip's end record: its signature, ..., the length of the comment after it
END_OF_ZIP_SIGNATURE = b"PK\x05\x06"

CHECKSUM_KEY = "checksum"  # where files written before the file checksum carry a checksum of their tensors
CHECKSUM_ALGORITHM = "sha256-bytes-and-word-sums-1"
SMALL_TENSOR_BYTES = 16384  # hashed byte by byte; larger tensors by their 64-bit word sum


class CheckpointError(ValueError):
    """The file is no readable checkpoint of the kind asked for: damaged, foreign, or of another format."""


# --- atomic writes ------------------------------------------------------------------------------------

def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], binary: bool = True) -> Path:
    """``write(file)`` into a temporary file beside ``path``, fsync it, then rename it onto ``path``; returns ``path``.

    A binary ``file`` is open for reading too (:func:`append_checksum` reads back what was written).

    The folder is created if needed. On any error (or interrupt) the temporary file is removed and
    the file at ``path`` is left untouched.
    """
    path = Path(os.path.realpath(path))  # a symlink keeps pointing at the file it names, which is updated
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = temp_file_beside(path)
    try:
        with os.fdopen(handle, "w+b" if binary else "w") as tmp:
            write(tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise
    _fsync_folder(path.parent)
    return path


def atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, ending with the checksum of the file (:func:`append_checksum`).

    The checksum replaces the CRC-32 that torch's zip format computes for each record and that
    ``torch.load`` never verifies: the file is written without it (where torch allows, 2.5 and later),
    which pays for the checksum's own pass over the file.
    """
    def write(file: IO) -> None:
        _save_without_zip_crc(obj, file)
        append_checksum(file)

    return atomic_write(path, write)


def _save_without_zip_crc(obj: Any, file: IO) -> None:
    """``torch.save`` with torch's unverified per-record CRC-32 switched off for this call only."""
    serialization = torch.serialization
    if not hasattr(serialization, "set_crc32_options"):
        torch.save(obj, file)
        return
    was_on = serialization.get_crc32_options()
    serialization.set_crc32_options(False)
    try:
        torch.save(obj, file)
    finally:
        serialization.set_crc32_options(was_on)


def atomic_write_json(data: dict[str, Any], path: str | os.PathLike) -> Path:
    """``data`` as indented, key-sorted JSON at ``path``, atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda file: json.dump(data, file, indent=2, sort_keys=True), binary=False)


def temp_file_beside(path: Path) -> tuple[int, str]:
    """A new hidden ``.NAME.*.tmp`` file in ``path``'s folder (to be renamed onto ``path``): (fd, its name).

    Its mode is the one ``path`` has, or for a new file what the user's umask allows (``mkstemp``
    alone would make every file private, 0600).
    """
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        mode = path.stat().st_mode & 0o7777 if path.exists() else 0o666 & ~_umask()
        if hasattr(os, "fchmod"):
            os.fchmod(handle, mode)
    except BaseException:
        os.close(handle)
        os.remove(tmp_name)
        raise
    return handle, tmp_name


def _umask() -> int:
    mask = os.umask(0o022)  # the only way to read it is to set it: put it back at once
    os.umask(mask)
    return mask


def stale_temp_files(path: str | os.PathLike) -> list[Path]:
    """The ``.NAME.*.tmp`` files a save of ``path`` leaves behind when its process is killed mid-write."""
    path = Path(os.path.realpath(path))
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp") if p.is_file())


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# --- one process at a time ------------------------------------------------------------------------

LOCK_POLL_S = 0.5  # where the OS has no blocking lock (Windows), how often a waiting process tries again


def lock_path(path: str | os.PathLike) -> Path:
    """The hidden ``.NAME.lock`` file beside ``path`` that :func:`exclusive_lock` holds."""
    path = Path(os.path.realpath(path))
    return path.parent / f".{path.name}.lock"


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, waiting: str | None = None) -> Iterator[None]:
    """Hold ``path``'s lock for the block: another process asking for it waits until the block ends.

    Two lessons run side by side (the site build) that need one model must not both train it: the
    one that gets the lock trains, the other waits, then finds the file. ``waiting`` is printed once
    if another process holds the lock. The lock is :func:`lock_path`, created if needed and left in
    place (an empty file); the OS releases it when its process ends, however it ends. A lock file
    that cannot be made or opened raises the OSError at once, naming it; on a file system without
    locks (some network mounts) the block runs unlocked, with a warning.
    """
    target = lock_path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle = open(target, "a+b")
    except OSError as error:  # before any work: the file itself could not be written there either
        raise type(error)(error.errno, f"cannot write {target} ({error.strerror}), the lock of {Path(path).name}: "
                                       "choose a folder you can write to") from None
    with handle:
        try:
            locked = _try_lock(handle)
        except OSError as error:  # ENOLCK, EOPNOTSUPP: the file system keeps no locks
            warnings.warn(f"{target.parent} keeps no file locks ({error.strerror}): two processes could make "
                          f"{Path(path).name} at once", stacklevel=3)
            yield
            return
        if not locked:
            if waiting:
                print(waiting, flush=True)
            while not _try_lock(handle, block=True):
                time.sleep(LOCK_POLL_S)
        try:
            yield
        finally:
            _unlock(handle)


def _try_lock(handle: IO, block: bool = False) -> bool:
    """Take the lock of the open file ``handle``; True when taken (with block, POSIX waits for it)."""
    try:
        import fcntl
    except ImportError:  # Windows: lock the first byte, never blocking (the caller polls)
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX if block else fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _unlock(handle: IO) -> None:
    try:
        import fcntl
    except ImportError:
        import msvcrt

        handle.seek(0)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
        return
    fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


# --- a checksum of the file ---------------------------------------------------------------------------

def append_checksum(file: IO) -> None:
    """End the zip archive that ``torch.save`` just wrote to ``file`` with the checksum of everything before it.

    The checksum goes in the archive's comment (``FILE_CHECKSUM_MAGIC`` + :func:`file_digest` in hex),
    which zip readers, ``torch.load`` included, skip: the file stays a plain torch file.
    """
    file.flush()
    size = file.seek(0, os.SEEK_END)
    file.seek(size - END_OF_ZIP.size)
    signature, comment_length = END_OF_ZIP.unpack(file.read(END_OF_ZIP.size))
    if signature != END_OF_ZIP_SIGNATURE or comment_length:
        raise RuntimeError("torch.save wrote no zip archive ending in an end record without a comment: "
                           "this version of torch cannot be used with course_lib's checksums")
    file.seek(size - 2)
    file.write(struct.pack("<H", len(FILE_CHECKSUM_MAGIC) + DIGEST_CHARS))
    file.write(FILE_CHECKSUM_MAGIC)
    file.flush()
    digest = file_digest(file, size + len(FILE_CHECKSUM_MAGIC))
    file.seek(0, os.SEEK_END)
    file.write(digest.encode("ascii"))


def file_digest(file: IO, length: int) -> str:
    """SHA-256 (hex) of the 64-bit word sums, modulo 2⁶⁴, of each 4 KiB block of ``file``'s first ``length``
    bytes, and of the bytes after the last whole block.

    One pass over the file, a chunk at a time into one buffer that stays in the CPU's cache. Any
    flipped bit changes its block's sum; a lost, repeated or moved block changes the list of sums.
    A file shorter than ``length`` gives the digest of what it holds.
    """
    file.seek(0)
    buffer = np.empty(min(CHUNK_BYTES, length), dtype=np.uint8)
    digest, left = hashlib.sha256(), length
    while left:
        got = _read_into(file, memoryview(buffer)[: min(CHUNK_BYTES, left)])
        whole = got - got % BLOCK_BYTES  # only the last chunk has a partial block
        block_sums = buffer[:whole].view(WORD).reshape(-1, BLOCK_BYTES // 8).sum(axis=1)
        digest.update(block_sums.astype(WORD, copy=False).tobytes())
        if whole < got or got < min(CHUNK_BYTES, left):
            digest.update(buffer[whole:got])
            break
        left -= got
    return digest.hexdigest()


def _read_into(file: IO, view: memoryview) -> int:
    """Fill ``view`` from ``file`` (a read may return less than asked); the bytes read, fewer at the end of the file."""
    got = 0
    while got < len(view):
        count = file.readinto(view[got:])
        if not count:
            break
        got += count
    return got


def stored_digest(file: IO) -> tuple[str, int] | None:
    """(the checksum :func:`append_checksum` stored at the end of ``file``, the length it covers), or None for a
    file without one (written before the file checksum existed, by plain ``torch.save``, or cut short).

    A checksum of another kind (a later version of course_lib) raises :class:`CheckpointError`.
    """
    size = os.fstat(file.fileno()).st_size
    length = size - DIGEST_CHARS
    if length < len(FILE_CHECKSUM_MAGIC):
        return None
    file.seek(length - len(FILE_CHECKSUM_MAGIC))
    tail = file.read()
    if not tail.startswith(FILE_CHECKSUM_MAGIC):
        if tail.startswith(CHECKSUM_LABEL):
            label = tail[: len(FILE_CHECKSUM_MAGIC)].decode("ascii", errors="replace")
            raise CheckpointError(f"{getattr(file, 'name', 'the file')}: expected a checksum of kind "
                                  f"{FILE_CHECKSUM_MAGIC.decode()!r}, got {label!r}. It was written by another "
                                  "version of course_lib.")
        return None
    return tail[len(FILE_CHECKSUM_MAGIC):].decode("ascii", errors="replace"), length


def _damaged(what: str, path: str | os.PathLike) -> CheckpointError:
    return CheckpointError(f"{what} {os.fspath(path)}: its contents do not match the checksum stored with it: "
                           "the file was damaged after it was written (a bad disk, copy or download). "
                           "Copy it again, or train again.")


# --- the checksum that older files carry in their dict -----------------------------------------------
# Files written before the file checksum store a checksum of their tensors under CHECKSUM_KEY (most
# of the shipped ones do); they are checked with it.

_NESTED = (torch.Tensor, dict, list, tuple)
_PLAIN = {int, float, str, bool, type(None)}
_NUMPY_DTYPES = {torch.float64, torch.float32, torch.float16, torch.int64, torch.int32, torch.int16, torch.int8,
                 torch.uint8, torch.bool}


def _tensors(obj: Any, name: str = ""):
    """(dotted name, tensor) for every tensor inside nested dicts, lists and tuples, in stored order."""
    if isinstance(obj, torch.Tensor):
        yield name, obj
        return
    if isinstance(obj, dict):
        items = obj.items()
    elif _PLAIN.issuperset(map(type, obj)):  # a list of plain numbers (a loss history): nothing inside
        return
    else:
        items = enumerate(obj)
    for key, value in items:
        if isinstance(value, _NESTED):
            yield from _tensors(value, f"{name}.{key}" if name else str(key))


def _word_sum(tensor: torch.Tensor) -> int:
    """The sum, modulo 2⁶⁴ (as a signed int64), of a CPU tensor's bytes read as 64-bit words (a last partial
    word byte by byte)."""
    data = _cpu_bytes(tensor)
    whole = data.size - data.size % 8
    total = int(data[:whole].view(np.int64).sum()) + int(data[whole:].sum(dtype=np.int64))
    return (total + 2**63) % 2**64 - 2**63


def _cpu_bytes(tensor: torch.Tensor) -> np.ndarray:
    """A CPU tensor's bytes as a flat uint8 NumPy array (no copy when it is contiguous)."""
    if tensor.dtype in _NUMPY_DTYPES and not tensor.requires_grad and tensor.is_contiguous():
        return tensor.numpy().reshape(-1).view(np.uint8)  # the fast way: one call into torch
    return tensor.detach().reshape(-1).view(torch.uint8).numpy()


def tensor_checksum(state: Any) -> str:
    """A checksum of every (CPU) tensor in ``state``: SHA-256 of their names, dtypes, shapes and contents.

    A tensor of up to SMALL_TENSOR_BYTES is hashed byte by byte; a larger one by its 64-bit word
    sum, which covers every byte at memory speed and changes with any single flipped bit. The
    names make a swapped or missing tensor count.
    """
    named = list(_tensors(state)) if isinstance(state, _NESTED) else []
    digest = hashlib.sha256("\n".join([f"{name}|{t.dtype}|{tuple(t.shape)}" for name, t in named]).encode())
    large_sums = []
    with torch.no_grad():
        for _, tensor in named:  # small ones stream into the digest in stored order, then the large ones' sums
            if tensor.numel() * tensor.element_size() <= SMALL_TENSOR_BYTES:
                digest.update(_cpu_bytes(tensor))
            else:
                large_sums.append(_word_sum(tensor))
    if large_sums:
        digest.update(str(large_sums).encode())
    return digest.hexdigest()


def verify_tensor_checksum(state: Any, path: str | os.PathLike, what: str = "checkpoint") -> None:
    """Raise ``CheckpointError`` naming ``path`` if ``state`` carries a checksum its tensors no longer match."""
    if not isinstance(state, dict) or CHECKSUM_KEY not in state:
        return  # written before checksums existed, or by plain torch.save
    stored = state[CHECKSUM_KEY]
    if not isinstance(stored, dict) or stored.get("algorithm") != CHECKSUM_ALGORITHM:
        raise CheckpointError(f"{what} {os.fspath(path)}: expected a checksum of kind {CHECKSUM_ALGORITHM!r}, "
                         f"got {stored!r}. It was written by another version of course_lib.")
    if stored.get("digest") != tensor_checksum(state):
        raise _damaged(what, path)


# --- reading back ---------------------------------------------------------------------------------------

def read_saved(path: str | os.PathLike, what: str = "checkpoint") -> Any:
    """What :func:`atomic_save` wrote to ``path``, read with ``weights_only=True`` on the CPU, checksum verified.

    A missing file is a FileNotFoundError and an unreadable one a PermissionError, each naming it; a
    truncated, corrupted or damaged one a :class:`CheckpointError` (``what`` names the kind of file).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path}: no such file")
    with open(path, "rb") as file:  # one handle: the file checked is the file loaded, even if replaced meanwhile
        try:
            stored = stored_digest(file)
            if stored is not None and file_digest(file, stored[1]) != stored[0]:
                raise _damaged(what, path)
        except PermissionError:
            raise
        except OSError as error:  # a read failing half-way: a bad disk or network file system
            raise CheckpointError(f"{what} {path}: cannot be read ({error.strerror or error}). Copy it again, "
                                  "or train again.") from error
        file.seek(0)
        state = _load(file, what, path, verified=stored is not None)
    if stored is None:
        verify_tensor_checksum(state, path, what)
    return state


def _load(file: IO, what: str, path: str, verified: bool) -> Any:
    """``torch.load`` of an open file; verified: its checksum matched, so a failure is not a damaged file."""
    try:
        return torch.load(file, map_location="cpu", weights_only=True)
    except PermissionError:
        raise  # names the file and says what is wrong; deleting it would not help
    except (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, pickle.UnpicklingError,
            zipfile.BadZipFile) as error:  # random bytes raise any of these
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        if verified:
            raise CheckpointError(f"{what} {path}: the file is intact (its checksum matches) but this torch "
                                  f"{torch.__version__} cannot read it ({reason}). It was written by another "
                                  "version of torch or course_lib.") from error
        raise CheckpointError(f"{what} {path}: cannot be read, the file is truncated or corrupted ({reason}). "
                              "Delete it and train again.") from error
