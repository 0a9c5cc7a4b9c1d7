"""A cache of what loading a structure-kernel model recomputes: its support features.

A structure-kernel model file stores its support *structures*, not their features (a few
MB instead of hundreds), so loading one featurizes thousands of crystals. The result
depends only on the file and on the code that computed it, so it is kept in the user
cache directory under a key made of the file's SHA-256 and the versions of this
package, featomic and torch, and the dtype. An entry is written atomically and checked
when read (its key, its shape, a checksum of its values); one that does not match is
rebuilt, never trusted.

``ASE_ALCHEMICAL_NO_CACHE=1`` (or ``cache=False`` where a model is loaded, or the CLI's
``--no-cache``) disables it; ``ASE_ALCHEMICAL_CACHE_DIR`` moves it.

A first load that builds an entry says so at INFO level on the ``ase_alchemical`` logger:
the command line shows it, a script or notebook sees it once it configures logging
(``logging.basicConfig(level=logging.INFO)``), and nothing is written to a notebook's
stderr unasked.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import featomic
import numpy as np
import torch

from .._version import __version__
from .fileio import atomic_write

__all__ = [
    "CACHE_DIR_ENV",
    "NO_CACHE_ENV",
    "log_build",
    "cache_directory",
    "cache_enabled",
    "cache_key",
    "cached_support_features",
    "support_features",
    "store_support_features",
]

_log = logging.getLogger(__name__)

#: Environment variable that disables the cache when set to 1 (or true, yes).
NO_CACHE_ENV = "ASE_ALCHEMICAL_NO_CACHE"
#: Environment variable naming the cache directory (by default the user cache directory).
CACHE_DIR_ENV = "ASE_ALCHEMICAL_CACHE_DIR"


def cache_enabled(cache: bool | None = None) -> bool:
    """Whether to use the cache: ``cache`` if given, else not when ``NO_CACHE_ENV`` is set."""
    if cache is not None:
        return bool(cache)
    return os.environ.get(NO_CACHE_ENV, "").strip().lower() not in ("1", "true", "yes")


def cache_directory(kind: str = "support-features") -> Path:
    """Where the entries of ``kind`` live: for the support features
    ``$ASE_ALCHEMICAL_CACHE_DIR`` itself, for another kind (``"prior-labels"``) a folder
    of that name in it; without the variable, a folder of that name in the user cache
    directory."""
    if os.environ.get(CACHE_DIR_ENV):
        root = Path(os.environ[CACHE_DIR_ENV])
        return root if kind == "support-features" else root / kind
    import pooch  # the same user cache as the downloaded data

    return Path(pooch.os_cache("ase-alchemical")) / kind


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cache_key(model_file: str | os.PathLike, dtype: torch.dtype) -> dict[str, str]:
    """The key of a model file's entry: what the cached features depend on."""
    return {
        "model_sha256": _file_sha256(Path(model_file)),
        "ase_alchemical": __version__,
        "featomic": featomic.__version__,
        "torch": torch.__version__.split("+")[0],
        "dtype": str(dtype),
    }


def _entry(key: dict[str, str]) -> Path:
    name = hashlib.sha256(repr(sorted(key.items())).encode()).hexdigest()[:32]
    return cache_directory() / f"{name}.pt"


def _checksum(values: torch.Tensor) -> int:
    # zlib's CRC-32 reads at several GB/s: corruption is caught without slowing the load
    return zlib.crc32(np.ascontiguousarray(values.numpy()).data)


def cached_support_features(key: dict[str, str], n_support: int) -> torch.Tensor | None:
    """The cached support features of ``key`` (CPU), or ``None`` when there is no valid
    entry. A stale or corrupted entry is reported and removed, so that it is rebuilt."""
    path = _entry(key)
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        values = data["support_features"]
        valid = (
            data["key"] == key
            and values.ndim == 2
            and values.shape[0] == n_support
            and data["checksum"] == _checksum(values)
        )
    except Exception:  # any unreadable entry is rebuilt, whatever broke it
        valid = False
    if not valid:
        warnings.warn(
            f"stale or corrupted support-feature cache entry {path}: rebuilding it",
            stacklevel=3,
        )
        path.unlink(missing_ok=True)
        return None
    return values


def store_support_features(key: dict[str, str], values: torch.Tensor) -> Path | None:
    """Write the entry of ``key`` atomically; a cache that cannot be written is skipped
    with a warning (loading still works, only slower the next time)."""
    values = values.detach().cpu().contiguous()
    data = {"key": key, "support_features": values, "checksum": _checksum(values)}
    try:
        return atomic_write(_entry(key), lambda tmp: torch.save(data, tmp))
    except OSError as e:
        warnings.warn(f"could not write the support-feature cache: {e}", stacklevel=3)
        return None


def log_build(model_file: str | os.PathLike, n_support: int) -> None:
    """Log (INFO) that a first load is featurizing the support structures of
    ``model_file`` and caching them: the one slow load of a model."""
    _log.info(
        "featurizing the %s support structures of %s and caching them in %s "
        "(later loads read the cache)",
        f"{n_support:,}",
        Path(model_file).name,
        cache_directory(),
    )


def support_features(
    model_file: str | os.PathLike,
    dtype: torch.dtype,
    n_support: int,
    build: Callable[[], torch.Tensor],
    cache: bool | None = None,
) -> torch.Tensor:
    """The support features of ``model_file``: the cached entry when it is valid, else
    ``build()``, stored (and the build logged) when the cache is enabled
    (:func:`cache_enabled` of ``cache``). A cached entry is on the CPU."""
    if not cache_enabled(cache):
        return build()
    key = cache_key(model_file, dtype)
    cached = cached_support_features(key, n_support)
    if cached is not None:
        return cached
    log_build(model_file, n_support)
    values = build()
    store_support_features(key, values)
    return values
