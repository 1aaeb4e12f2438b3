"""Tests for fmclassify.data: finding, fetching, validating, holding and batching data sets.

Everything runs on small synthetic files written in the real formats (IDX, CIFAR-10 pickles)
into tmp_path, and downloads come from a local HTTP server: no test touches the network. One
integration test reads the real Fashion-MNIST from Debian's dataset-fashion-mnist.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import io
import multiprocessing
import os
import pickle
import re
import struct
import tarfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torchvision.datasets as tvd
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset
from torchvision import transforms

from fmclassify import data
from fmclassify.data import ImageDataset, iter_batches, list_datasets, load_dataset, num_batches
from fmclassify.exceptions import (
    ConfigError,
    CorruptDataError,
    DataError,
    DataNotFoundError,
    UnknownDatasetError,
)

IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
TV_DIRS = {"fashion-mnist": "FashionMNIST", "mnist": "MNIST", "kmnist": "KMNIST"}
H, W = 7, 5  # not square, so a swapped height and width would show
UNREACHABLE = "http://127.0.0.1:9/"  # the discard port: connection refused at once


# ---------------------------------------------------------------------------------------------
# Writing fake data sets in the real formats
# ---------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX file: magic 0x0000080D, big-endian sizes, data."""
    magic = struct.pack(">BBBB", 0, 0, 8, array.ndim)
    header = magic + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_file(path: Path, content: bytes, *, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path = path.with_name(path.name + ".gz")
        content = gzip.compress(content, mtime=0)
    path.write_bytes(content)
    return path


def make_split(n: int, seed: int, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (
        rng.integers(0, 256, (n, H, W), dtype=np.uint8),
        rng.integers(0, num_classes, n, dtype=np.uint8),
    )


def write_idx_copy(
    folder: Path, *, gz: bool = True, n_train: int = 12, n_test: int = 5, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Write the four IDX files of a data set into folder; return the arrays written."""
    arrays = {"train": make_split(n_train, seed), "test": make_split(n_test, seed + 100)}
    for split, (images_name, labels_name) in IDX_NAMES.items():
        images, labels = arrays[split]
        write_file(folder / images_name, idx_bytes(images), gz=gz)
        write_file(folder / labels_name, idx_bytes(labels), gz=gz)
    return arrays


CIFAR_CLASSES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]


def cifar_batch(n: int, seed: int) -> dict[str, object]:
    rng = np.random.default_rng(seed)
    return {
        "batch_label": f"batch {seed}",
        "data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        "labels": [int(v) for v in rng.integers(0, 10, n)],
        "filenames": [f"img{i}.png" for i in range(n)],
    }


def write_cifar_copy(folder: Path, n: int = 3) -> dict[str, dict[str, object]]:
    """Write the seven CIFAR-10 python files into folder; return the batches written."""
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": cifar_batch(n, i) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(n + 1, 6)
    for name, batch in batches.items():
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": CIFAR_CLASSES, "num_cases_per_batch": n, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return batches


# ---------------------------------------------------------------------------------------------
# Fixtures
# ---------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """Keep every test away from the real cache, system copy, environment and network."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("FMCLASSIFY_DATA", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", tmp_path / "system")
    for cls in (tvd.MNIST, tvd.FashionMNIST, tvd.KMNIST):
        monkeypatch.setattr(cls, "mirrors", [UNREACHABLE])
    monkeypatch.setattr(tvd.CIFAR10, "url", UNREACHABLE + "cifar-10-python.tar.gz")
    return SimpleNamespace(
        home=home, cache=home / ".cache" / "fmclassify", system=tmp_path / "system"
    )


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www, recording each request."""
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        delay = 0.0

        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(www), **kwargs)

        def do_GET(self):
            requests.append(self.path)
            time.sleep(Handler.delay)
            super().do_GET()

        def log_message(self, *args):
            pass

    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield SimpleNamespace(
        url=f"http://127.0.0.1:{httpd.server_port}/", www=www, requests=requests, handler=Handler
    )
    httpd.shutdown()
    httpd.server_close()


def serve_fashion(server, monkeypatch, *, seed: int = 0):
    """Put a gzipped fake Fashion-MNIST on the server and point torchvision at it."""
    arrays = write_idx_copy(server.www / "fmnist", gz=True, seed=seed)
    resources = []
    for names in IDX_NAMES.values():
        for name in names:
            content = (server.www / "fmnist" / f"{name}.gz").read_bytes()
            resources.append((f"{name}.gz", hashlib.md5(content).hexdigest()))
    monkeypatch.setattr(tvd.FashionMNIST, "mirrors", [server.url + "fmnist/"])
    monkeypatch.setattr(tvd.FashionMNIST, "resources", resources)
    return arrays


# ---------------------------------------------------------------------------------------------
# Names
# ---------------------------------------------------------------------------------------------


def test_list_datasets():
    assert list_datasets() == ["fashion-mnist", "mnist", "kmnist", "cifar10"]
    assert tuple(list_datasets()) == data.DATASETS


@pytest.mark.parametrize(
    "alias",
    ["fashion-mnist", "fashion_mnist", "fmnist", "FashionMNIST", "Fashion-MNIST", " FMNIST "],
)
def test_fashion_aliases(tmp_path, alias):
    write_idx_copy(tmp_path / "d")
    train, _ = load_dataset(alias, root=tmp_path / "d", download=False)
    assert train.name == "fashion-mnist"


def test_cifar_alias(tmp_path):
    write_cifar_copy(tmp_path / "c")
    train, _ = load_dataset("CIFAR-10", root=tmp_path / "c", download=False)
    assert train.name == "cifar10"


def test_unknown_name_suggests_and_lists():
    with pytest.raises(
        UnknownDatasetError,
        match=r"unknown data set 'fashoin-mnist'; did you "
        r"mean 'fashion-mnist'\? available: fashion-mnist, mnist, kmnist, cifar10",
    ):
        load_dataset("fashoin-mnist", download=False)
    with pytest.raises(LookupError, match=r"unknown data set 'imagenet'; available: "):
        load_dataset("imagenet", download=False)
    with pytest.raises(TypeError, match="must be a string, got int"):
        load_dataset(10)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "tv_class"),
    [("fashion-mnist", tvd.FashionMNIST), ("kmnist", tvd.KMNIST), ("cifar10", None)],
)
def test_class_names_match_torchvision(tmp_path, name, tv_class):
    if name == "cifar10":
        write_cifar_copy(tmp_path)
        expected = tuple(CIFAR_CLASSES)
    else:
        write_idx_copy(tmp_path)
        expected = tuple(tv_class.classes)
    train, test = load_dataset(name, root=tmp_path, download=False)
    assert train.classes == test.classes == expected


# ---------------------------------------------------------------------------------------------
# Reading IDX copies in every layout
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fashion-mnist", "mnist", "kmnist"])
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("layout", ["flat", "named", "torchvision"])
def test_idx_copy_loads(tmp_path, name, gz, layout):
    folder = {
        "flat": tmp_path,
        "named": tmp_path / name,
        "torchvision": tmp_path / TV_DIRS[name] / "raw",
    }[layout]
    arrays = write_idx_copy(folder, gz=gz)
    train, test = load_dataset(name, root=tmp_path, download=False)
    for ds, split in ((train, "train"), (test, "test")):
        images, labels = arrays[split]
        assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
        assert ds.images.shape == (len(images), 1, H, W)
        assert ds.image_shape == (1, H, W) and ds.num_classes == 10 and len(ds) == len(images)
        assert torch.equal(ds.images[:, 0], torch.from_numpy(images))
        assert torch.equal(ds.labels, torch.from_numpy(labels).long())
        assert (ds.name, ds.split, ds.source) == (name, split, str(folder))
        assert ds.mean is None and ds.std is None
    if name == "mnist":
        assert train.classes == tuple("0123456789")


def test_checksum_is_sha256_of_the_uncompressed_content(tmp_path):
    write_idx_copy(tmp_path / "gz", gz=True)
    write_idx_copy(tmp_path / "raw", gz=False)
    train_gz, test_gz = load_dataset("mnist", root=tmp_path / "gz", download=False)
    train_raw, test_raw = load_dataset("mnist", root=tmp_path / "raw", download=False)
    names = IDX_NAMES["train"]
    expected = hashlib.sha256(
        b"".join((tmp_path / "raw" / name).read_bytes() for name in names)
    ).hexdigest()
    assert train_gz.checksum == train_raw.checksum == expected
    assert test_gz.checksum == test_raw.checksum != expected


def test_plain_file_preferred_over_gz_when_both_exist(tmp_path):
    write_idx_copy(tmp_path, gz=True, seed=1)
    arrays = write_idx_copy(tmp_path, gz=False, seed=2)
    train, _ = load_dataset("mnist", root=tmp_path, download=False)
    assert torch.equal(train.images[:, 0], torch.from_numpy(arrays["train"][0]))


def test_idx_matches_torchvision_reader(tmp_path):
    """torchvision's own MNIST reader is the oracle for the decoded IDX content."""
    write_idx_copy(tmp_path / "FashionMNIST" / "raw", gz=False)
    ours, _ = load_dataset("fashion-mnist", root=tmp_path, download=False)
    theirs = tvd.FashionMNIST(str(tmp_path), train=True, download=False)
    assert torch.equal(ours.images[:, 0], theirs.data)
    assert torch.equal(ours.labels, theirs.targets)


def test_env_variable_is_searched(tmp_path, monkeypatch):
    write_idx_copy(tmp_path / "env" / "KMNIST" / "raw")
    monkeypatch.setenv("FMCLASSIFY_DATA", str(tmp_path / "env"))
    train, _ = load_dataset("kmnist", download=False)
    assert train.source == str(tmp_path / "env" / "KMNIST" / "raw")


def test_train_and_test_shapes_must_agree(tmp_path):
    write_idx_copy(tmp_path)
    write_file(tmp_path / IDX_NAMES["test"][0], idx_bytes(np.zeros((5, 4, 4), np.uint8)), gz=True)
    with pytest.raises(
        CorruptDataError,
        match=r"train images have shape \(1, 7, 5\) but test "
        r"images \(1, 4, 4\)",
    ):
        load_dataset("mnist", root=tmp_path, download=False)


# ---------------------------------------------------------------------------------------------
# Search order and the not-found error
# ---------------------------------------------------------------------------------------------


def test_search_order_root_env_cache_system(tmp_path, monkeypatch, isolated):
    places = {
        "root": tmp_path / "root",
        "env": tmp_path / "env",
        "cache": isolated.cache,
        "system": isolated.system / "fashion-mnist",
    }
    for seed, folder in enumerate(places.values()):
        write_idx_copy(folder, seed=seed)
    monkeypatch.setenv("FMCLASSIFY_DATA", str(places["env"]))

    def source(**kwargs):
        return load_dataset("fashion-mnist", download=False, **kwargs)[0].source

    assert source(root=places["root"]) == str(places["root"])
    assert source() == str(places["env"])
    monkeypatch.delenv("FMCLASSIFY_DATA")
    assert source() == str(places["cache"])
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the cache moves with it
    assert source() == str(places["system"])
    write_idx_copy(tmp_path / "xdg" / "fmclassify" / "fashion-mnist")
    assert source() == str(tmp_path / "xdg" / "fmclassify" / "fashion-mnist")


def test_incomplete_copy_is_skipped_and_reported(tmp_path, isolated):
    write_idx_copy(tmp_path / "root")
    (tmp_path / "root" / "t10k-labels-idx1-ubyte.gz").unlink()
    write_idx_copy(isolated.system / "mnist", seed=5)
    train, _ = load_dataset("mnist", root=tmp_path / "root", download=False)
    assert train.source == str(isolated.system / "mnist")


def test_not_found_lists_every_place_and_the_fixes(tmp_path, isolated):
    root = tmp_path / "root"
    write_idx_copy(root)
    (root / "train-images-idx3-ubyte.gz").unlink()
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("fashion-mnist", root=root, download=False)
    message = str(info.value)
    assert message.startswith("could not find the fashion-mnist data set. Looked in:")
    for place in (root, isolated.cache, isolated.system):
        for folder in (place, place / "fashion-mnist", place / "FashionMNIST" / "raw"):
            assert f"    {folder}: " in message
    assert f"{root}: incomplete: missing train-images-idx3-ubyte[.gz]" in message
    assert f"{root / 'fashion-mnist'}: does not exist" in message
    assert "$FMCLASSIFY_DATA: not set" in message
    assert "download: not attempted (download=False)" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert "set FMCLASSIFY_DATA=<folder> or pass root=<folder>" in message
    assert "load_dataset(..., download=True) on a machine with internet access" in message
    assert isinstance(info.value, FileNotFoundError)


def test_not_found_for_mnist_has_no_apt_hint(isolated):
    with pytest.raises(DataNotFoundError, match="could not find the mnist data set") as info:
        load_dataset("mnist", download=False)
    assert "apt-get" not in str(info.value)
    assert "root argument: not set" in str(info.value)


def test_corrupt_copy_is_never_skipped_for_a_later_place(tmp_path, isolated):
    write_idx_copy(isolated.system / "fashion-mnist")
    write_idx_copy(tmp_path / "root")
    bad = tmp_path / "root" / "train-labels-idx1-ubyte.gz"
    bad.write_bytes(bad.read_bytes()[:-6])
    with pytest.raises(CorruptDataError, match=re.escape(str(bad))):
        load_dataset("fashion-mnist", root=tmp_path / "root", download=False)


# ---------------------------------------------------------------------------------------------
# Corrupt IDX files
# ---------------------------------------------------------------------------------------------


def _images(n=12):
    return make_split(n, 0)[0]


CORRUPTIONS = {
    # name: (which file, raw content or a function of the valid content, expected message)
    "bad magic": (
        "images",
        lambda b: b"\x12\x34" + b[2:],
        r"bad magic number 0x12340803 \(an "
        r"IDX image file starts with 0x00000803\): this is not an IDX file",
    ),
    "bad type": (
        "labels",
        lambda b: b[:2] + b"\x0d" + b[3:],
        r"data type code 0x0D \(float32\), "
        "expected 0x08",
    ),
    "wrong dims": (
        "labels",
        lambda b: idx_bytes(np.zeros((12, 1, 1), np.uint8)),
        r"bad magic number 0x00000803 \(an IDX label file starts with 0x00000801\): "
        "3 dimensions, expected 1",
    ),
    "short": ("images", lambda b: b[:3], "it is 3 bytes long, too short for an IDX header"),
    "short header": (
        "images",
        lambda b: b[:10],
        "truncated header: 10 bytes, but a 3-dimensional IDX header takes 16",
    ),
    "truncated": (
        "images",
        lambda b: b[:-7],
        r"truncated: the header promises 12 x 7 x 5 = 420 "
        "bytes of data, but only 413 follow the 16-byte header",
    ),
    "extended": ("labels", lambda b: b + b"\x00\x01", "2 bytes more than the 12 = 12 bytes"),
    "empty shape": (
        "images",
        lambda b: idx_bytes(np.zeros((0, 7, 5), np.uint8)),
        "the header gives the empty shape 0 x 7 x 5",
    ),
    "count mismatch": (
        "labels",
        lambda b: idx_bytes(np.zeros(11, np.uint8)),
        "holds 12 images but .* holds 11 labels",
    ),
    "label range": (
        "labels",
        lambda b: idx_bytes(np.array([0] * 5 + [10] + [0] * 6, np.uint8)),
        r"label 10 at index 5 is outside 0..9 \(this data set has 10 classes\)",
    ),
}


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
@pytest.mark.parametrize("case", sorted(CORRUPTIONS))
def test_corrupt_idx_names_file_and_problem(tmp_path, case, gz):
    which, corrupt, problem = CORRUPTIONS[case]
    write_idx_copy(tmp_path, gz=gz)
    name = IDX_NAMES["train"][0 if which == "images" else 1]
    path = tmp_path / (name + ".gz" if gz else name)
    content = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    write_file(tmp_path / name, corrupt(content), gz=gz)
    with pytest.raises(CorruptDataError, match=re.escape(str(path))) as info:
        load_dataset("fashion-mnist", root=tmp_path, download=False)
    assert re.search(problem, str(info.value))
    assert "Delete the file and fetch the data set again" in str(info.value)


def test_truncated_gzip(tmp_path):
    write_idx_copy(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:30])
    with pytest.raises(
        CorruptDataError,
        match=re.escape(str(path)) + ": the gzip stream is "
        r"truncated \(it ends before its end marker\)",
    ):
        load_dataset("mnist", root=tmp_path, download=False)


@pytest.mark.parametrize(
    "content",
    [b"not gzip at all", gzip.compress(b"x" * 50)[:-4] + b"\0" * 4],
    ids=["not gzip", "bad crc"],
)
def test_bad_gzip(tmp_path, content):
    write_idx_copy(tmp_path)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(CorruptDataError, match=re.escape(str(path)) + ": not a valid gzip file"):
        load_dataset("mnist", root=tmp_path, download=False)


def test_unreadable_file_is_a_data_error(tmp_path, monkeypatch):
    write_idx_copy(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    read_bytes = Path.read_bytes

    def deny(self):  # chmod 0 would not stop root, so refuse the read here
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", deny)
    with pytest.raises(
        DataError, match=f"cannot read data file {re.escape(str(path))}: Permission denied"
    ) as info:
        load_dataset("mnist", root=tmp_path, download=False)
    assert not isinstance(info.value, CorruptDataError)


# ---------------------------------------------------------------------------------------------
# CIFAR-10
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["flat", "named", "torchvision"])
def test_cifar_copy_loads(tmp_path, layout):
    folder = {
        "flat": tmp_path,
        "named": tmp_path / "cifar10",
        "torchvision": tmp_path / "cifar-10-batches-py",
    }[layout]
    batches = write_cifar_copy(folder)
    train, test = load_dataset("cifar10", root=tmp_path, download=False)
    assert train.images.shape == (15, 3, 32, 32) and test.images.shape == (4, 3, 32, 32)
    assert train.classes == tuple(CIFAR_CLASSES) and train.source == str(folder)
    row = batches["data_batch_2"]["data"][1]  # the 5th train image: batch 2, row 1
    assert train.images[4, 0, 0, 0] == row[0] and train.images[4, 1, 0, 0] == row[1024]
    assert train.images[4, 2, 31, 31] == row[3071] and train.images[4, 0, 1, 0] == row[32]
    expected = [label for i in range(1, 6) for label in batches[f"data_batch_{i}"]["labels"]]
    assert train.labels.tolist() == expected


def test_cifar_matches_torchvision_reader(tmp_path, monkeypatch):
    write_cifar_copy(tmp_path / "cifar-10-batches-py")
    for attr in ("train_list", "test_list"):  # md5 None: torchvision checks only existence
        monkeypatch.setattr(tvd.CIFAR10, attr, [[n, None] for n, _ in getattr(tvd.CIFAR10, attr)])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": None})
    ours, ours_test = load_dataset("cifar10", root=tmp_path, download=False)
    for split, ds in ((True, ours), (False, ours_test)):
        theirs = tvd.CIFAR10(str(tmp_path), train=split)
        assert torch.equal(ds.images.permute(0, 2, 3, 1), torch.from_numpy(theirs.data))
        assert ds.labels.tolist() == theirs.targets


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


CIFAR_CORRUPTIONS = {
    "not a dict": ([1, 2, 3], "it holds a list, expected a dict"),
    "no labels": ({"data": np.zeros((2, 3072), np.uint8)}, "it has no 'labels' entry"),
    "wrong shape": (
        {"data": np.zeros((2, 3000), np.uint8), "labels": [0, 1]},
        r"'data' is a uint8 array of shape \(2, 3000\), expected a uint8 array of "
        r"shape \(N, 3072\)",
    ),
    "wrong dtype": (
        {"data": np.zeros((2, 3072), np.float32), "labels": [0, 1]},
        "'data' is a float32 array",
    ),
    "labels not ints": (
        {"data": np.zeros((2, 3072), np.uint8), "labels": ["a", "b"]},
        "'labels' is not a flat list of integers",
    ),
    "count mismatch": (
        {"data": np.zeros((2, 3072), np.uint8), "labels": [0]},
        "holds 2 images but its 'labels' holds 1 labels",
    ),
    "label range": (
        {"data": np.zeros((2, 3072), np.uint8), "labels": [0, 10]},
        r"label 10 at index 1 is outside 0..9",
    ),
    "empty": ({"data": np.zeros((0, 3072), np.uint8), "labels": []}, "it holds no images"),
    "code execution": (
        {"data": _Evil()},
        r"cannot unpickle it \(UnpicklingError: it asks for the "
        r"global (posix|os|nt)\.system, which a CIFAR-10 batch never needs\)",
    ),
}


@pytest.mark.parametrize("case", sorted(CIFAR_CORRUPTIONS))
def test_corrupt_cifar_names_file_and_problem(tmp_path, case):
    obj, problem = CIFAR_CORRUPTIONS[case]
    write_cifar_copy(tmp_path)
    path = tmp_path / "data_batch_3"
    path.write_bytes(pickle.dumps(obj, protocol=2))
    with pytest.raises(CorruptDataError, match=re.escape(str(path)) + ".*" + problem):
        load_dataset("cifar10", root=tmp_path, download=False)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_cifar_pickle_protocols_and_numpy_labels(tmp_path, protocol):
    batches = write_cifar_copy(tmp_path)
    batch = dict(batches["test_batch"], labels=np.asarray(batches["test_batch"]["labels"]))
    (tmp_path / "test_batch").write_bytes(pickle.dumps(batch, protocol=protocol))
    _, test = load_dataset("cifar10", root=tmp_path, download=False)
    assert test.labels.tolist() == batch["labels"].tolist()


def test_corrupt_cifar_files(tmp_path):
    write_cifar_copy(tmp_path)
    path = tmp_path / "test_batch"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(CorruptDataError, match=re.escape(str(path)) + r": cannot unpickle it"):
        load_dataset("cifar10", root=tmp_path, download=False)
    meta = tmp_path / "batches.meta"
    meta.write_bytes(pickle.dumps({"label_names": []}))
    with pytest.raises(
        CorruptDataError,
        match=re.escape(str(meta)) + ": 'label_names' is not a non-empty list of class names",
    ):
        load_dataset("cifar10", root=tmp_path, download=False)


# ---------------------------------------------------------------------------------------------
# ImageDataset
# ---------------------------------------------------------------------------------------------


def small_dataset(n=6, channels=1, **kwargs):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, channels, 4, 3), generator=g, dtype=torch.uint8)
    return ImageDataset(images, torch.arange(n) % 3, ("a", "b", "c"), **kwargs)


@pytest.mark.parametrize("channels", [1, 3])
def test_float_images_equal_to_tensor_exactly(channels):
    ds = small_dataset(channels=channels)
    to_tensor = transforms.ToTensor()
    x = ds.float_images()
    assert x.dtype == torch.float32 and x.shape == ds.images.shape
    for i in range(len(ds)):
        hwc = ds.images[i].permute(1, 2, 0).numpy()
        pil = Image.fromarray(hwc[:, :, 0] if channels == 1 else hwc)
        assert torch.equal(x[i], to_tensor(pil))
    assert ds.float_images() is x  # cached


def test_float_images_normalized_equal_normalize_exactly():
    mean, std = (0.2, 0.5, 0.7), (0.3, 0.25, 0.1)
    ds = small_dataset(channels=3, mean=mean, std=std)
    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    for i in range(len(ds)):
        pil = Image.fromarray(ds.images[i].permute(1, 2, 0).numpy())
        assert torch.equal(ds.float_images()[i], pipeline(pil))


@pytest.mark.parametrize("kind", ["idx", "cifar"])
def test_normalize_standardizes_train_per_channel(tmp_path, kind):
    if kind == "idx":
        write_idx_copy(tmp_path, n_train=40)
        name = "mnist"
    else:
        write_cifar_copy(tmp_path)
        name = "cifar10"
    train, test = load_dataset(name, root=tmp_path, download=False, normalize=True)
    x = train.float_images().double()
    dims = (0, 2, 3)
    assert torch.allclose(x.mean(dims), torch.zeros(x.shape[1], dtype=torch.float64), atol=1e-6)
    assert torch.allclose(
        x.std(dims, unbiased=False), torch.ones(x.shape[1], dtype=torch.float64), atol=1e-6
    )
    plain = train.images.double() / 255
    assert train.mean == pytest.approx(plain.mean(dims).tolist(), abs=1e-12)
    assert train.std == pytest.approx(plain.std(dims, unbiased=False).tolist(), abs=1e-12)
    assert (test.mean, test.std) == (train.mean, train.std)


INVALID = {
    "images dtype": (
        dict(images=torch.zeros(2, 1, 3, 3, dtype=torch.float64)),
        r"images must be a uint8 \(or float32\) tensor of shape \(N, C, H, W\), got torch.float64",
    ),
    "images ndim": (
        dict(images=torch.zeros(2, 3, 3, dtype=torch.uint8)),
        "images must be .* got "
        r"torch.uint8 tensor of shape \(2, 3, 3\)",
    ),
    "labels dtype": (
        dict(labels=torch.zeros(2, dtype=torch.int32)),
        r"labels must be an int64 tensor of shape \(N,\), got torch.int32",
    ),
    "labels type": (dict(labels=[0, 1]), "labels must be an int64 tensor .* got list"),
    "length": (dict(labels=torch.zeros(3, dtype=torch.long)), "2 images but 3 labels"),
    "empty": (
        dict(
            images=torch.zeros(0, 1, 3, 3, dtype=torch.uint8),
            labels=torch.zeros(0, dtype=torch.long),
        ),
        "it holds no images",
    ),
    "label range": (
        dict(labels=torch.tensor([0, 3])),
        r"labels span 0..3, but with 3 classes "
        r"they must lie in 0..2",
    ),
    "negative label": (dict(labels=torch.tensor([-1, 0])), "labels span -1..0"),
    "no classes": (dict(classes=()), "classes must be a non-empty sequence of names"),
    "mean only": (dict(mean=(0.5,)), "set both mean and std, or neither"),
    "mean length": (
        dict(mean=(0.5, 0.5), std=(1.0, 1.0)),
        r"mean and std need one value per channel \(1\), got 2 and 2",
    ),
    "std zero": (dict(mean=(0.5,), std=(0.0,)), r"every std must be positive, got \(0.0,\)"),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_image_dataset_validates(case):
    changes, message = INVALID[case]
    fields = dict(
        images=torch.zeros(2, 1, 3, 3, dtype=torch.uint8),
        labels=torch.tensor([0, 1]),
        classes=("a", "b", "c"),
        name="toy",
        split="train",
    )
    fields.update(changes)
    with pytest.raises(DataError, match=r"data set 'toy' \(train\): " + message):
        ImageDataset(**fields)


def test_image_dataset_basics():
    ds = small_dataset(name="toy", split="test", checksum="abc")
    assert repr(ds) == (
        "ImageDataset(name='toy', split='test', n=6, image_shape=(1, 4, 3), "
        "classes=3, device=cpu, normalized=False)"
    )
    assert ImageDataset(ds.images, ds.labels, ["a", "b", "c"]).classes == ("a", "b", "c")
    assert ds.to("cpu") is ds and ds.to(torch.device("cpu")) is ds


def test_subset_forms_and_metadata():
    ds = small_dataset(
        name="toy", split="train", source="/x", checksum="abc", mean=(0.5,), std=(0.25,)
    )
    cached = ds.float_images()
    first = ds.subset(4)
    assert len(first) == 4 and torch.equal(first.images, ds.images[:4])
    assert (first.name, first.split, first.source, first.checksum, first.mean, first.std) == (
        "toy",
        "train",
        "/x",
        "abc",
        (0.5,),
        (0.25,),
    )
    assert torch.equal(first.float_images(), cached[:4])
    picked = ds.subset(torch.tensor([5, 0, -1]))
    assert picked.labels.tolist() == [ds.labels[5], ds.labels[0], ds.labels[5]]
    assert torch.equal(picked.float_images(), cached[[5, 0, 5]])
    assert torch.equal(ds.subset([1, 2]).images, ds.images[1:3])
    assert torch.equal(ds.subset(slice(1, None, 2)).labels, ds.labels[1::2])
    mask = ds.labels == 1
    assert torch.equal(ds.subset(mask).images, ds.images[mask])


@pytest.mark.parametrize(
    ("arg", "message"),
    [
        (0, r"subset\(0\): n must lie in 1..6, the size of the data set"),
        (7, r"subset\(7\): n must lie in 1..6"),
        (True, "not a bool"),
        (slice(3, 3), r"subset\(slice\(3, 3, None\)\) selects no images"),
        (
            torch.tensor([0, 6]),
            r"index out of range for a data set of 6 images \(indices span "
            r"0..6\)",
        ),
        (torch.tensor([0.0, 1.0]), "indices must be a 1-D integer tensor"),
        (torch.zeros(2, 2, dtype=torch.long), "indices must be a 1-D integer tensor"),
    ],
)
def test_subset_rejects(arg, message):
    with pytest.raises(ConfigError, match=message):
        small_dataset().subset(arg)


# ---------------------------------------------------------------------------------------------
# Batching
# ---------------------------------------------------------------------------------------------


def toy_tensors(n=23):
    return torch.arange(n * 2, dtype=torch.float32).view(n, 1, 2), torch.arange(n)


def test_unshuffled_batches_are_views_in_dataloader_order():
    x, y = toy_tensors()
    ours = list(iter_batches(x, y, 5, shuffle=False))
    theirs = list(DataLoader(TensorDataset(x, y), batch_size=5))
    assert [len(b) for b, _ in ours] == [5, 5, 5, 5, 3]
    assert len(ours) == num_batches(23, 5) == 5
    for (xb, yb), (xt, yt) in zip(ours, theirs, strict=True):
        assert torch.equal(xb, xt) and torch.equal(yb, yt)
        assert xb.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()  # a view


def test_shuffled_batches_follow_dataloader_with_generator():
    x, y = toy_tensors()
    g_ours, g_theirs = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    loader = DataLoader(TensorDataset(x, y), batch_size=4, shuffle=True, generator=g_theirs)
    for _ in range(3):  # the generators must also advance alike, epoch after epoch
        ours = list(iter_batches(x, y, 4, generator=g_ours))
        theirs = list(loader)
        assert len(ours) == len(theirs) == 6 and len(ours[-1][0]) == 3
        for (xb, yb), (xt, yt) in zip(ours, theirs, strict=True):
            assert torch.equal(xb, xt) and torch.equal(yb, yt)
        assert sorted(torch.cat([yb for _, yb in ours]).tolist()) == list(range(23))
    assert torch.equal(g_ours.get_state(), g_theirs.get_state())


def test_shuffled_batches_follow_dataloader_with_global_rng():
    x, y = toy_tensors()
    torch.manual_seed(3)
    ours = torch.cat([yb for _, yb in iter_batches(x, y, 8)])
    after_ours = torch.rand(1)
    torch.manual_seed(3)
    theirs = torch.cat([yb for _, yb in DataLoader(TensorDataset(x, y), 8, shuffle=True)])
    assert torch.equal(ours, theirs) and torch.equal(after_ours, torch.rand(1))
    assert not torch.equal(ours, y)


def test_iter_batches_checks_at_call_time():
    x, y = toy_tensors()
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1, got 0"):
        iter_batches(x, y, 0)
    with pytest.raises(ConfigError, match=r"got 2\.5"):
        iter_batches(x, y, 2.5)  # type: ignore[arg-type]
    with pytest.raises(DataError, match="got 23 images on cpu and 22 labels on cpu"):
        iter_batches(x, y[:-1], 4)
    assert list(iter_batches(x[:0], y[:0], 4)) == []


@pytest.mark.parametrize(
    ("n", "b", "expected"), [(0, 4, 0), (1, 4, 1), (8, 4, 2), (9, 4, 3), (60000, 64, 938)]
)
def test_num_batches(n, b, expected):
    assert num_batches(n, b) == expected


def test_num_batches_rejects():
    with pytest.raises(ConfigError, match="n must be an integer >= 0, got -1"):
        num_batches(-1, 4)
    with pytest.raises(ConfigError, match="batch_size must be an integer >= 1, got True"):
        num_batches(4, True)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_batches_on_cuda_with_cpu_and_cuda_generators():
    x, y = toy_tensors()
    xc, yc = x.cuda(), y.cuda()
    cpu_order = torch.cat(
        [yb for _, yb in iter_batches(x, y, 4, generator=torch.Generator().manual_seed(1))]
    )
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any host sync while batching raises
    try:
        batches = list(iter_batches(xc, yc, 4, generator=torch.Generator().manual_seed(1)))
        unshuffled = list(iter_batches(xc, yc, 4, shuffle=False))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    cuda_order = torch.cat([yb for _, yb in batches])
    assert cuda_order.device.type == "cuda" and torch.equal(cuda_order.cpu(), cpu_order)
    assert torch.equal(torch.cat([yb for _, yb in unshuffled]).cpu(), y)
    g = torch.Generator(device="cuda").manual_seed(1)
    batches = list(iter_batches(xc, yc, 4, generator=g))
    assert sorted(torch.cat([yb for _, yb in batches]).tolist()) == list(range(23))
    with pytest.raises(ConfigError, match="the generator is on cuda"):
        iter_batches(x, y, 4, generator=g)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_dataset_to_cuda_and_float_images_there():
    ds = small_dataset(channels=3, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    on_gpu = ds.to("cuda")
    assert on_gpu is not ds and on_gpu.to("cuda") is on_gpu
    assert on_gpu.images.device.type == on_gpu.labels.device.type == "cuda"
    x = on_gpu.float_images()
    assert x.device.type == "cuda"
    # CUDA's float division may round the last bit differently from the CPU's (seen on an H200).
    torch.testing.assert_close(x.cpu(), ds.float_images(), rtol=1e-6, atol=1e-7)
    assert on_gpu.subset(torch.tensor([2, 0])).images.device.type == "cuda"


# ---------------------------------------------------------------------------------------------
# Downloads, from a local server
# ---------------------------------------------------------------------------------------------


def test_download_into_root(tmp_path, server, monkeypatch):
    arrays = serve_fashion(server, monkeypatch)
    root = tmp_path / "dl"
    train, test = load_dataset("fashion-mnist", root=root)
    raw = root / "FashionMNIST" / "raw"
    assert train.source == str(raw) and len(train) == 12 and len(test) == 5
    assert torch.equal(train.images[:, 0], torch.from_numpy(arrays["train"][0]))
    assert (root / ".fmclassify.lock").exists()
    assert not [p for p in root.iterdir() if p.name.startswith(".download-")]
    assert {p.name for p in raw.iterdir()} >= {
        "train-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte",
    }
    served = len(server.requests)
    again, _ = load_dataset("fashion-mnist", root=root)  # found now: no second download
    assert len(server.requests) == served and again.checksum == train.checksum


def test_download_defaults_to_user_cache(server, monkeypatch, isolated):
    serve_fashion(server, monkeypatch)
    train, _ = load_dataset("fashion-mnist")
    assert train.source == str(isolated.cache / "FashionMNIST" / "raw")


def test_download_failure_is_reported(tmp_path, server, monkeypatch):
    monkeypatch.setattr(tvd.FashionMNIST, "mirrors", [server.url + "missing/"])
    root = tmp_path / "dl"
    with pytest.raises(DataNotFoundError) as info:
        load_dataset("fashion-mnist", root=root)
    message = str(info.value)
    assert f"download: into {root} failed: RuntimeError: Error downloading " in message
    assert "HTTP Error 404" in message
    assert f"    {root / 'FashionMNIST' / 'raw'}: does not exist" in message
    assert "sudo apt-get install dataset-fashion-mnist" in message
    assert not [p for p in root.iterdir() if p.name.startswith(".download-")]


def test_download_md5_mismatch_is_reported(tmp_path, server, monkeypatch):
    serve_fashion(server, monkeypatch)
    bad = [(name, "0" * 32) for name, _ in tvd.FashionMNIST.resources]
    monkeypatch.setattr(tvd.FashionMNIST, "resources", bad)
    with pytest.raises(
        DataNotFoundError,
        match=r"(?s)failed: RuntimeError: .*File not found or "
        "corrupted",
    ):
        load_dataset("fashion-mnist", root=tmp_path / "dl")


def test_download_cifar(tmp_path, server, monkeypatch):
    batches = write_cifar_copy(tmp_path / "src" / "cifar-10-batches-py")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        tar.add(tmp_path / "src" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    (server.www / "cifar-10-python.tar.gz").write_bytes(buffer.getvalue())
    monkeypatch.setattr(tvd.CIFAR10, "url", server.url + "cifar-10-python.tar.gz")
    monkeypatch.setattr(tvd.CIFAR10, "tgz_md5", hashlib.md5(buffer.getvalue()).hexdigest())
    for attr in ("train_list", "test_list"):
        monkeypatch.setattr(tvd.CIFAR10, attr, [[n, None] for n, _ in getattr(tvd.CIFAR10, attr)])
    monkeypatch.setattr(tvd.CIFAR10, "meta", {**tvd.CIFAR10.meta, "md5": None})
    train, test = load_dataset("cifar10", root=tmp_path / "dl")
    assert train.source == str(tmp_path / "dl" / "cifar-10-batches-py")
    assert len(train) == 15 and test.labels.tolist() == batches["test_batch"]["labels"]
    assert not (tmp_path / "dl" / "cifar-10-python.tar.gz").exists()  # the archive is dropped


def _load_in_child(root: str, barrier, results) -> None:
    torch.set_num_threads(1)
    barrier.wait(timeout=30)
    train, test = load_dataset("fashion-mnist", root=root)
    results.put((train.checksum, test.checksum, train.source))


def test_two_processes_downloading_at_once(tmp_path, server, monkeypatch):
    serve_fashion(server, monkeypatch)
    load_dataset("fashion-mnist", root=tmp_path / "alone")  # the requests one download makes
    one_download = sorted(server.requests)
    server.requests.clear()
    server.handler.delay = 0.05  # slow enough that the two runs overlap
    ctx = multiprocessing.get_context("fork")  # children inherit the monkeypatched mirrors
    barrier, results = ctx.Barrier(2), ctx.Queue()
    root = str(tmp_path / "shared")
    children = [ctx.Process(target=_load_in_child, args=(root, barrier, results)) for _ in range(2)]
    for child in children:
        child.start()
    outcomes = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=30)
        assert child.exitcode == 0
    assert outcomes[0] == outcomes[1]
    assert sorted(server.requests) == one_download  # one process downloaded, the other waited
    assert not [p for p in Path(root).iterdir() if p.name.startswith(".download-")]


# ---------------------------------------------------------------------------------------------
# The real Fashion-MNIST
# ---------------------------------------------------------------------------------------------

REAL = Path("/usr/share/datasets/fashion-mnist")
# sha256 of the uncompressed official train files (images, then labels): the data's identity
REAL_TRAIN_SHA256 = "d9ef4273af5c2e360155dad0c06bd939447bf37a6620db007d69fc79e4732045"


@pytest.mark.integration
def test_real_fashion_mnist_from_the_system_copy(monkeypatch):
    if not REAL.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{REAL} missing in CI; .ci/run must install dataset-fashion-mnist")
        pytest.skip(f"{REAL} not installed (sudo apt-get install dataset-fashion-mnist)")
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", REAL.parent)
    train, test = load_dataset("fashion-mnist", download=False)
    assert train.source == test.source == str(REAL)
    assert (len(train), len(test)) == (60000, 10000)
    assert train.image_shape == test.image_shape == (1, 28, 28)
    assert train.classes == tuple(tvd.FashionMNIST.classes) and train.num_classes == 10
    assert torch.bincount(train.labels).tolist() == [6000] * 10
    assert torch.bincount(test.labels).tolist() == [1000] * 10
    assert train.checksum == REAL_TRAIN_SHA256
