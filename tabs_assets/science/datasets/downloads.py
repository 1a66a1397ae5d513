"""A checksummed download cache for raw data files (the UCI data sets use it).

Every raw file lives in one cache directory (``raw_dir``); a file already present there is used
as is (pre-downloaded files for offline clusters). Downloads go to a temporary file in
``raw_dir`` and are renamed into place only when complete. ``raw_dir/checksums.json`` records
the sha256 of each file the first time it is downloaded or used; a later mismatch is an error
(delete the file to download it again).

Why not ``pooch``, which downloads, checks and caches for a living: its check needs a digest
known in advance (``known_hash=None`` checks nothing), and none is pinned for these UCI files
(they could not be fetched where this was written; scikit-learn pins one for its figshare
mirror of covtype, not known to be byte-identical to the UCI file). The rest of this cache
(trust on first use recorded in checksums.json, one lock for parallel runs, an error naming
the file and folder to fill by hand when offline) pooch would not replace, only wrap.
"""

import http.client
import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from filelock import FileLock

from tabs_assets.config.hashing import file_sha256
from tabs_assets.files import write_file_durably
from tabs_assets.science.datasets.tabular import DatasetError

CHECKSUMS_FILE = "checksums.json"
DOWNLOAD_TIMEOUT_S = 60.0


def _download(url: str, destination: Path) -> None:
    """Stream ``url`` into ``destination`` (the caller makes the rename atomic)."""
    with (
        urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response,
        destination.open("wb") as handle,
    ):
        shutil.copyfileobj(response, handle)


def _download_atomically(name: str, url: str, raw_dir: Path) -> Path:
    target = raw_dir / name
    descriptor, temp_name = tempfile.mkstemp(dir=raw_dir, prefix=f".{name}.", suffix=".part")
    os.close(descriptor)
    temp = Path(temp_name)
    try:
        _download(url, temp)
        os.replace(temp, target)
    except (OSError, http.client.HTTPException) as error:
        # URLError, HTTPError and timeouts are OSErrors; a cut connection is an HTTPException.
        raise DatasetError(
            f"cannot download {name} from {url} ({error}). Without network access, download it "
            f"elsewhere and put it at {target} (file name {name!r} in directory {raw_dir})."
        ) from error
    finally:
        temp.unlink(missing_ok=True)
    return target


def _read_checksums(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise DatasetError(f"{path} is not valid JSON ({error}); delete it") from error


def _write_checksums(path: Path, checksums: dict[str, str]) -> None:
    write_file_durably(path, json.dumps(checksums, indent=2, sort_keys=True) + "\n")


def _forget_checksum(checksums_path: Path, name: str) -> None:
    checksums = _read_checksums(checksums_path)
    if checksums.pop(name, None) is not None:
        _write_checksums(checksums_path, checksums)


def _verify_checksum(path: Path, pinned: str | None) -> None:
    """Check against the pinned digest and checksums.json; record the digest on first use."""
    actual = file_sha256(path)
    checksums_path = path.parent / CHECKSUMS_FILE
    checksums = _read_checksums(checksums_path)
    expected = pinned or checksums.get(path.name)
    if expected is not None and actual != expected:
        source = "the UCI file's known digest" if pinned else f"recorded in {checksums_path}"
        raise DatasetError(
            f"checksum mismatch for {path}: sha256 {actual}, expected {expected} ({source}). "
            f"The file is corrupt or was replaced; delete it to download it again."
        )
    if checksums.get(path.name) != actual:
        checksums[path.name] = actual
        _write_checksums(checksums_path, checksums)


def fetch_raw_file(name: str, url: str, raw_dir: Path, sha256: str | None = None) -> Path:
    """Path of ``raw_dir/name``, downloaded from ``url`` if absent, checksum verified.

    ``sha256``: the file's known digest, when one is pinned; else the first one seen is kept.
    """
    raw_dir.mkdir(parents=True, exist_ok=True)
    target = raw_dir / name
    # One lock for the whole cache: parallel runs must neither download the same file twice
    # nor lose each other's checksums.json entries.
    with FileLock(raw_dir / ".cache.lock"):
        if not target.exists():
            # A deleted file is downloaded (or dropped in) afresh: forget its old digest.
            _forget_checksum(raw_dir / CHECKSUMS_FILE, name)
            _download_atomically(name, url, raw_dir)
        _verify_checksum(target, sha256)
    return target
