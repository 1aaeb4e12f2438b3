"""Test helpers shared by several test modules."""

from __future__ import annotations

import torch


def make_dataset(n: int = 256, *, size: int = 8, channels: int = 1, classes: int = 4,
                 seed: int = 0, split: str = "train"):
    """A learnable synthetic set: each class lights up its own block of pixels."""
    from fmclassify.data import ImageDataset

    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (n,), generator=g)
    images = torch.randint(0, 60, (n, channels, size, size), generator=g, dtype=torch.uint8)
    block = size // classes
    for c in range(classes):
        rows = labels == c
        images[rows, :, c * block:(c + 1) * block, :] += 150
    return ImageDataset(images=images, labels=labels.long(),
                        classes=tuple(f"c{i}" for i in range(classes)),
                        name="synthetic", split=split, checksum=f"synthetic-{seed}")


def write_fashion_idx(folder, n_train: int = 512, n_test: int = 128, size: int = 28,
                      source=None) -> None:
    """Write a Fashion-MNIST in the real gzip IDX format, under the real file names.

    The images are synthetic, or the first ``n_train``/``n_test`` of ``source`` (a
    ``(train, test)`` pair such as the real data set).
    """
    import gzip
    import struct
    from pathlib import Path

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, (prefix, n, seed) in enumerate((("train", n_train, 0), ("t10k", n_test, 1))):
        if source is None:
            ds = make_dataset(n, size=size, classes=10, seed=seed)
        else:
            ds = source[i].subset(n)
            size = ds.image_shape[1]
        images = struct.pack(">4B3I", 0, 0, 8, 3, n, size, size) + ds.images.numpy().tobytes()
        labels = struct.pack(">4BI", 0, 0, 8, 1, n) + ds.labels.to(torch.uint8).numpy().tobytes()
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))


CIFAR_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                 "ship", "truck"]


def write_cifar_files(folder, n: int = 40, *, learnable: bool = False) -> None:
    """Write the seven CIFAR-10 python pickles (five training batches, the test batch, meta).

    ``learnable``: each class brightens its own band of rows, so a small net learns it.
    """
    import pickle
    from pathlib import Path

    import numpy as np

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]):
        rng = np.random.default_rng(i)
        count = n + (1 if name == "test_batch" else 0)
        labels = rng.integers(0, 10, count)
        data = rng.integers(0, 120, (count, 3, 32, 32), dtype=np.uint8)
        if learnable:
            for j, c in enumerate(labels):
                data[j, :, 3 * c:3 * c + 3, :] += 120
        batch = {"batch_label": name, "data": data.reshape(count, 3072),
                 "labels": [int(v) for v in labels],
                 "filenames": [f"img{j}.png" for j in range(count)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": CIFAR_CLASSES, "num_cases_per_batch": n, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
