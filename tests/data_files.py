"""Data files the tests write: real digits as image folders and CSV tables."""

from __future__ import annotations

import csv
import os

import numpy as np
from PIL import Image

from keras_bigmodel import data


def digits_subset(classes=(0, 1, 2), per_class=20, split="train"):
    """Real digits of the given classes: images (n, 8, 8, 1) in [0, 1], labels."""
    digits = data.load_digits()
    x, y = (digits.x_train, digits.y_train) if split == "train" else (digits.x_test, digits.y_test)
    keep = np.concatenate([np.flatnonzero(y == c)[:per_class] for c in classes])
    return x[keep], y[keep]


def to_uint8(images):
    return np.round(np.asarray(images)[..., 0] * 255).astype("uint8")


def write_image_folder(root, images, labels, names=None, scale=1, mode="L"):
    """One sub-folder per class, one PNG per image (upscaled `scale` times)."""
    root = str(root)
    for i, (image, label) in enumerate(zip(to_uint8(images), labels)):
        folder = os.path.join(root, names[label] if names else str(label))
        os.makedirs(folder, exist_ok=True)
        picture = Image.fromarray(image, "L")
        if scale != 1:
            picture = picture.resize((8 * scale, 8 * scale), Image.NEAREST)
        picture.convert(mode).save(os.path.join(folder, f"{i:04d}.png"))
    return root


def write_csv(path, rows, header):
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def digits_csv(path, images, labels, names=None, extra=None):
    """64 pixel columns p0..p63 and a 'label' column (class names if given)."""
    header = [f"p{i}" for i in range(64)] + ["label"] + list(extra or {})
    rows = []
    for i, (image, label) in enumerate(zip(images, labels)):
        row = [f"{v:.6f}" for v in image.reshape(-1)] + [names[label] if names else int(label)]
        rows.append(row + [values[i] for values in (extra or {}).values()])
    return write_csv(path, rows, header)


def write_sized_folder(root, images, labels, names, sizes):
    """Like `write_image_folder`, but image i is resized (Pillow, bilinear) to
    `sizes[i % len(sizes)]` = (height, width): a folder of images of several sizes."""
    root = str(root)
    for i, (image, label) in enumerate(zip(to_uint8(images), labels)):
        folder = os.path.join(root, names[label])
        os.makedirs(folder, exist_ok=True)
        height, width = sizes[i % len(sizes)]
        picture = Image.fromarray(image, "L")
        if (height, width) != (8, 8):
            picture = picture.resize((width, height), Image.BILINEAR)
        picture.save(os.path.join(folder, f"{i:04d}.png"))
    return root


def read_png(path, size=None):
    """A PNG's pixels, 0..255 float32 (h, w, 1), resized by Pillow (bilinear) if `size`."""
    with Image.open(path) as picture:
        picture = picture.convert("L")
        if size is not None and picture.size != (size[1], size[0]):
            picture = picture.resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(picture, dtype="float32")[..., None]
