"""Download and cache MovieLens archives with sha256 verification."""

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile

# sha256 of the GroupLens zips, as recorded by tensorflow/datasets
# (tensorflow_datasets/url_checksums/movielens.txt): ml-100k.zip 4,924,029 bytes,
# ml-1m.zip 5,917,549 bytes.
KNOWN_SHA256 = {
    "ml-100k": "50d2a982c66986937beb9ffb3aa76efe955bf3d5c6b761f4e3a7cd717c6a3229",
    "ml-1m": "a6898adb50b9ca05aa231689da44c217cb524e7ebd39d264c56e2832f2c54e20",
}
_RATINGS = {"ml-100k": "u.data", "ml-1m": "ratings.dat"}
DEFAULT_BASE_URL = "https://files.grouplens.org/datasets/movielens/"


def file_sha256(path: str) -> str:
    """Hex sha256 of a file's bytes (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def download_movielens(
    name: str,
    *,
    cache_dir: str = "~/.cache/robustjax",
    base_url: str = DEFAULT_BASE_URL,
    sha256: str | None = None,
) -> str:
    """Downloads ``{base_url}{name}.zip``, verifies it, extracts it and returns the ratings file.

    The expected checksum is ``sha256`` if given, else ``KNOWN_SHA256[name]``. If neither
    is known (``KNOWN_SHA256`` entry removed or set to None), the checksum is computed on
    first download and recorded next to the zip as ``{name}.zip.sha256``; later calls
    verify the cached zip against that record. A second call uses the cache.

    Args:
        name: "ml-100k" or "ml-1m".
        cache_dir: cache folder (``~`` expanded).
        base_url: folder URL ending in "/" (``file://`` URLs work, for tests and mirrors).
        sha256: expected hex digest, overriding the known one.

    Returns:
        Path of ``u.data`` (ml-100k) or ``ratings.dat`` (ml-1m) in the cache.
    """
    if name not in _RATINGS:
        raise ValueError(
            f"download_movielens: unknown name={name!r}; use one of {sorted(_RATINGS)}."
        )
    cache = os.path.expanduser(os.fspath(cache_dir))
    os.makedirs(cache, exist_ok=True)
    zip_path = os.path.join(cache, f"{name}.zip")
    record = zip_path + ".sha256"
    target = os.path.join(cache, name, _RATINGS[name])
    expected = sha256 or KNOWN_SHA256.get(name)
    if expected is None and os.path.exists(record):
        with open(record) as f:
            expected = f.read().strip()
    if (
        os.path.exists(target)
        and os.path.exists(zip_path)
        and (expected is None or file_sha256(zip_path) == expected.lower())
    ):
        return target
    if not os.path.exists(zip_path) or (expected and file_sha256(zip_path) != expected.lower()):
        url = base_url + ("" if base_url.endswith("/") else "/") + f"{name}.zip"
        _fetch_verified(url, cache, zip_path, record, expected)
    _extract(zip_path, cache, target, f"{name}/{_RATINGS[name]}")
    return target


def _fetch_verified(url: str, cache: str, zip_path: str, record: str, expected: str | None) -> None:
    """Downloads ``url`` to ``zip_path`` (via a temporary file in ``cache``), checking its
    sha256 against ``expected``, or recording it in ``record`` when none is expected."""
    fd, tmp = tempfile.mkstemp(dir=cache, suffix=".part")
    os.close(fd)
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            shutil.copyfileobj(r, f)
    except (urllib.error.URLError, OSError) as e:
        os.remove(tmp)
        raise ValueError(f"download_movielens: could not download {url!r}: {e}.") from None
    got = file_sha256(tmp)
    if expected is not None and got != expected.lower():
        os.remove(tmp)
        raise ValueError(
            f"download_movielens: checksum mismatch for {url!r}: sha256 {got}, expected "
            f"{expected}. The download is corrupt or the file changed upstream; pass "
            f"sha256= to accept a new version."
        )
    os.replace(tmp, zip_path)
    if expected is None:
        with open(record, "w") as f:
            f.write(got + "\n")


def _extract(zip_path: str, cache: str, target: str, member: str) -> None:
    """Extracts ``zip_path`` into ``cache`` and checks that ``target`` (``member``) exists."""
    try:
        with zipfile.ZipFile(zip_path) as z:
            z.extractall(cache)
    except zipfile.BadZipFile as e:
        raise ValueError(f"download_movielens: {zip_path!r} is not a zip file ({e}).") from None
    if not os.path.exists(target):
        raise ValueError(f"download_movielens: {zip_path!r} has no {member} member.")
