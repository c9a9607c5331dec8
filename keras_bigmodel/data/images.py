"""Image folders: one sub-folder per class (the class names), or none (unlabelled).

Every file is opened with `safety.open_data_file` (regular files, links only inside the
folder); an image's header is checked against `max_image_pixels` before it is decoded,
and the decoded pixels of the whole folder against `memory_limit` (beyond it the images
are read from disk batch by batch)."""

from __future__ import annotations

import os

import keras
import numpy as np

from keras_bigmodel.data import safety
from keras_bigmodel.data._text import check_class_name, names_for, printable, reason
from keras_bigmodel.data.dataset import UNNAMED, Dataset
from keras_bigmodel.data.errors import DataError
from keras_bigmodel.data.options import DEFAULT_LABEL_COLUMN, LoadOptions
from keras_bigmodel.data.readers import Reader, register_reader

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderReader", "decode"]

IMAGE_EXTENSIONS = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
_GREY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F")


def _pil():
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover (Pillow comes with matplotlib)
        raise DataError("reading images needs Pillow: pip install pillow") from None
    return Image


class _TooLarge(Exception):
    pass


def _check_pixels(path: str, size, limit: int) -> None:
    width, height = size
    if width * height > limit:
        raise DataError(
            f"image {printable(path)} declares {width}x{height} pixels ({width * height:,}); "
            f"at most {limit:,} are allowed (max_image_pixels)"
        )


def decode(
    path: str,
    size: tuple[int, int] | None,
    color_mode: str,
    root: str,
    max_pixels: int,
    raw: bool = False,
) -> np.ndarray:
    """One image as float32 pixels, `(height, width, channels)`: in [0, 1], or the raw
    values 0..255 with `raw=True` (for a model that rescales them itself); resized
    to `size` (Pillow, bilinear and antialiased) unless `size` is None."""
    Image = _pil()
    with safety.open_data_file(path, root) as f:
        with Image.open(f) as image:
            _check_pixels(path, image.size, max_pixels)
            image = image.convert("L" if color_mode == "grayscale" else "RGB")
            if size is not None and (image.size[1], image.size[0]) != tuple(size):
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            pixels = np.asarray(image, dtype="float32")
    if pixels.ndim == 2:
        pixels = pixels[..., None]
    return pixels if raw else pixels / 255.0


class _ImageFeatures:
    """Image files decoded a batch at a time (or all at once into `cache`).

    `size` is the one size every image is read at (resized to it, or all of that
    size); None when the images keep their own sizes (`sizes`, one `(height, width)`
    per image; `cache` is then a list of arrays) and a batch takes images of one size.
    """

    def __init__(
        self, paths, size, color_mode, root, max_pixels, cache=None, sizes=None, raw=False
    ):
        self.paths, self.size, self.color_mode = paths, size, color_mode
        self.root, self.max_pixels, self.cache = root, max_pixels, cache
        self.sizes = list(sizes) if sizes is not None else [tuple(size)] * len(paths)
        self.raw = raw
        self.in_memory = cache is not None

    def __len__(self):
        return len(self.paths)

    @property
    def channels(self) -> int:
        return 1 if self.color_mode == "grayscale" else 3

    def shapes(self) -> dict[str, tuple]:
        if self.size is None:
            return {UNNAMED: (None, None, self.channels)}
        return {UNNAMED: (*self.size, self.channels)}

    def size_groups(self) -> list[np.ndarray]:
        groups: dict[tuple, list[int]] = {}
        for i, size in enumerate(self.sizes):
            groups.setdefault(tuple(size), []).append(i)
        return [np.asarray(g, dtype="int64") for g in groups.values()]

    def take(self, indices: np.ndarray) -> dict[str, np.ndarray]:
        if self.size is not None and isinstance(self.cache, np.ndarray):
            return {UNNAMED: self.cache[indices]}
        sizes = {tuple(self.sizes[i]) for i in indices}
        if len(sizes) > 1:
            raise DataError(
                f"images of {len(sizes)} different sizes cannot be one batch (e.g. "
                + ", ".join(f"{h}x{w}" for h, w in sorted(sizes)[:3])
                + "); take them in groups of one size (Dataset.size_groups())"
            )
        size = next(iter(sizes)) if sizes else (self.size or (0, 0))
        out = np.empty((len(indices), *size, self.channels), dtype="float32")
        for i, index in enumerate(indices):
            if self.cache is not None:
                out[i] = self.cache[index]
            else:
                out[i] = decode(
                    self.paths[index],
                    self.size,
                    self.color_mode,
                    self.root,
                    self.max_pixels,
                    self.raw,
                )
        return {UNNAMED: out}

    def subset(self, indices: np.ndarray) -> _ImageFeatures:
        sizes = [self.sizes[i] for i in indices]
        size = self.size
        if size is None and len(set(map(tuple, sizes))) == 1:
            size = tuple(sizes[0])  # one size left: a uniform folder
        cache = self.cache
        if cache is not None:
            if isinstance(cache, np.ndarray):
                cache = cache[indices]
            else:
                cache = [cache[i] for i in indices]
                if size is not None:
                    cache = np.stack(cache) if cache else None
        return _ImageFeatures(
            [self.paths[i] for i in indices],
            size,
            self.color_mode,
            self.root,
            self.max_pixels,
            cache,
            sizes,
            self.raw,
        )


def _bad_image(path: str, error: Exception) -> DataError:
    return DataError(
        f"cannot read image {printable(path)} ({reason(error)}); fix or remove it, or skip "
        f"unreadable images with --bad-images skip (bad_images='skip')"
    )


def _images_in(files: list[str]) -> tuple[list[str], int]:
    found = [f for f in files if f.lower().endswith(IMAGE_EXTENSIONS)]
    return found, len(files) - len(found)


class ImageFolderReader(Reader):
    """A folder of images (see the module docstring)."""

    format = "images"
    kind = "image"
    extensions = ()

    def claims(self, path: str) -> bool:
        return os.path.isdir(path)

    def read(self, root: str, options: LoadOptions, known) -> Dataset:
        budget = safety.new_budget(root, options.max_files)
        class_dirs, top_files, ignored = safety.scan(root, root, budget)
        extensions = ", ".join(IMAGE_EXTENSIONS)
        paths, labels, names = [], [], None
        if class_dirs:
            names = [check_class_name(d, f"class folder in {printable(root)}") for d in class_dirs]
            for index, name in enumerate(class_dirs):
                folder = os.path.join(root, name)
                files, other = safety.walk_files(
                    folder, root, options.max_files, options.max_depth, budget
                )
                found, not_images = _images_in(files)
                ignored += other + not_images
                if not found:
                    raise DataError(
                        f"class folder {printable(folder)} holds no images ({extensions}); add "
                        f"images to it or remove it"
                    )
                paths += found
                labels += [index] * len(found)
            ignored += len(top_files)  # files beside the class folders
        else:
            paths, not_images = _images_in([os.path.join(root, f) for f in top_files])
            ignored += not_images
            if not paths:
                raise DataError(
                    f"{printable(root)} holds no images ({extensions}) and no class "
                    f"sub-folders; put the images in one sub-folder per class"
                )
        return self._decode_all(root, paths, labels, names, ignored, options, known)

    def _decode_all(self, root, paths, labels, names, ignored, options, known) -> Dataset:
        Image = _pil()
        # Headers first (cheap): sizes and colour modes, and files that are not images.
        skipped, sizes, grey, keep = [], {}, True, []
        for i, p in enumerate(paths):
            try:
                with safety.open_data_file(p, root) as f, Image.open(f) as im:
                    _check_pixels(p, im.size, options.max_image_pixels)
                    sizes[i] = (im.size[1], im.size[0])  # (height, width)
                    grey = grey and im.mode in _GREY_MODES
                keep.append(i)
            except DataError:
                raise
            except Exception as e:  # PIL raises many kinds of error for a bad file
                skipped.append((p, reason(e)))
                if options.bad_images == "refuse":
                    raise _bad_image(p, e) from None
        color_mode = options.color_mode or ("grayscale" if grey else "rgb")
        channels = 1 if color_mode == "grayscale" else 3
        image_size = options.image_size
        own = image_size is None and options.own_sizes
        if not keep:
            raise DataError(f"none of the {len(paths)} images in {printable(root)} can be read")
        size_used = image_size
        if image_size is None:
            first = keep[0]
            for i in keep:
                if sizes[i] != sizes[first] and not own:
                    (h0, w0), (h, w) = sizes[first], sizes[i]
                    raise DataError(
                        f"images differ in size: {printable(paths[first])} is {h0}x{w0}, "
                        f"{printable(paths[i])} is {h}x{w}; resize them all with --image-size "
                        f"HEIGHTxWIDTH (image_size=)"
                    )
            if len({sizes[i] for i in keep}) == 1:
                size_used = sizes[first]
        raw = options.pixels == "raw"
        # Then decode every image once: into memory if it fits, else only to check it.
        if size_used is not None:
            nbytes = len(keep) * size_used[0] * size_used[1] * channels * 4
        else:
            nbytes = sum(sizes[i][0] * sizes[i][1] for i in keep) * channels * 4
        in_memory = nbytes <= options.memory_limit
        cache = None
        if in_memory:
            cache = np.empty((len(keep), *size_used, channels), "float32") if size_used else []
        progress = keras.utils.Progbar(len(keep), unit_name="image") if options.verbose else None
        good = []
        for n, i in enumerate(keep):
            try:
                pixels = decode(
                    paths[i], image_size, color_mode, root, options.max_image_pixels, raw
                )
            except DataError:
                raise
            except Exception as e:
                skipped.append((paths[i], reason(e)))
                if options.bad_images == "refuse":
                    raise _bad_image(paths[i], e) from None
            else:
                if isinstance(cache, list):
                    cache.append(pixels)
                elif cache is not None:
                    cache[len(good)] = pixels
                good.append(i)
            if progress is not None and ((n + 1) % 64 == 0 or n + 1 == len(keep)):
                progress.update(n + 1)
        if not good:
            raise DataError(f"none of the {len(paths)} images in {printable(root)} can be read")
        if isinstance(cache, np.ndarray) and len(good) < len(keep):
            cache = cache[: len(good)]
        kept = [paths[i] for i in good]
        features = _ImageFeatures(
            kept,
            size_used,
            color_mode,
            root,
            options.max_image_pixels,
            cache,
            [image_size or sizes[i] for i in good],
            raw,
        )
        # ids are text that can always be written (undecodable bytes as escapes)
        ids = [printable(os.path.relpath(p, root)) for p in kept]
        info = {
            "color_mode": color_mode,
            "image_size": None if size_used is None else list(size_used),
            "resized": image_size is not None,
            "scale": "1" if raw else "1/255",
            "ignored": ignored,
        }
        if names is None:
            return Dataset(root, "images", features, None, None, ids, skipped, info)
        y = np.asarray([labels[i] for i in good], dtype="int64")
        empty = [names[c] for c in range(len(names)) if not np.any(y == c)]
        if empty:
            raise DataError(
                f"class folder {printable(os.path.join(root, empty[0]))} holds no readable "
                f"images (all were skipped as unreadable)"
            )
        model_names = names_for(known, DEFAULT_LABEL_COLUMN, [DEFAULT_LABEL_COLUMN])
        if model_names is not None:
            from keras_bigmodel.data._text import map_values

            y = map_values([names[c] for c in y], model_names, "class folder")
            names = model_names
        return Dataset(
            root,
            "images",
            features,
            {DEFAULT_LABEL_COLUMN: y},
            {DEFAULT_LABEL_COLUMN: list(names)},
            ids,
            skipped,
            info,
            {DEFAULT_LABEL_COLUMN: "values"},
        )


register_reader(ImageFolderReader())
