"""A procedural zero-shot segmentation benchmark whose classes look the way their word vectors
say (``+experiment=demo``; not part of the paper).

Generator, per sample (everything a deterministic function of ``(seed, image_set, index)``):

1. **Class appearance** (fixed for the dataset): every class's vector ``v_c`` (rows of
   ``appearance``, e.g. the run's GloVe class embeddings) is unit-normalised and projected by
   a fixed Gaussian random matrix ``W`` (seeded by ``seed``; rows ~ N(0, I)) to
   :data:`PARAMS` = 7 numbers ``Φ(W v_c / |v_c|)`` in (0, 1) (Φ = normal CDF), which set
   *independent* texture parameters: colour (hue, saturation, value), stripe period
   (3–16 px, geometric), stripe orientation (0–180°), stripe contrast (0.1–0.9) and stripe
   sharpness (sine to near-square). Classes with similar vectors therefore get similar
   textures, and a class never seen in training looks the way its vector predicts: zero-shot
   transfer is learnable by construction.
2. **Layout**: the background class's texture fills the image; then ``min_objects`` …
   ``max_objects`` objects (uniform count), each an ellipse or a 3–6-gon (random size 12–35 %
   of the image side, position, rotation) drawn in turn, later ones occluding earlier ones.
   Shapes never depend on the class. The last-drawn ("anchor") object of image ``i`` has class
   ``objects[(i + offset) % 20]`` (``offset`` drawn per image set), so every object class is
   fully visible in any split of at least 20 images; the others are uniform over the 20 object
   classes.
3. **Per-instance noise**: each texture parameter jittered by N(0, ``jitter``) (clipped to
   [0, 1]), a random stripe phase, and Gaussian pixel noise of std ``pixel_noise`` (0-255
   scale).

Items follow the dataset contract of :class:`~zss.data.ZSSDataModule`: ``dict(image=uint8
(3, H, W) RGB, label=int64 (H, W) with values in [0, C) (no void), id="<image_set>_<index>")``,
``transform`` None, ``ids``, ``class_presence()``.
"""

from __future__ import annotations

import colorsys
import math
import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw
from torch.utils.data import Dataset

from zss.data.splits import VOC_CLASSES

__all__ = ["PARAMS", "SyntheticSegmentation", "texture_parameters"]

PARAMS = ("hue", "saturation", "value", "period", "orientation", "contrast", "sharpness")
"""The texture parameters each class vector sets, in the order of :func:`texture_parameters`."""
DEFAULT_LENGTHS = {"train": 3000, "val": 200, "test": 200}


def texture_parameters(vectors: np.ndarray, seed: int) -> np.ndarray:
    """Class vectors (C, d) -> texture parameters (C, 7) in (0, 1).

    ``Φ(standardise(W (u - mean u)))`` with ``u = v / |v|``, a fixed Gaussian ``W`` (7, d)
    drawn from ``seed``, the mean over the C classes, and each of the 7 projections
    standardised over the classes (zero mean, unit std) so that the direction all word vectors
    share does not make every class look alike and every parameter spans its range.

    Raises:
        ValueError: not a 2-D array, fewer than 2 rows, or a zero row.
    """
    v = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    if v.ndim != 2 or v.shape[0] < 2 or np.any(norms == 0):
        raise ValueError(f"appearance vectors must be a (C, d) array of C >= 2 non-zero rows, "
                         f"got shape {v.shape}")
    w = np.random.default_rng([seed, 7919]).standard_normal((len(PARAMS), v.shape[1]))
    u = v / norms
    z = (u - u.mean(axis=0)) @ w.T
    z = (z - z.mean(axis=0)) / np.maximum(z.std(axis=0), 1e-12)
    return 0.5 * (1.0 + np.vectorize(math.erf)(z / math.sqrt(2.0)))


class SyntheticSegmentation(Dataset):
    """The generated benchmark (see the module docstring for the generator).

    Args:
        image_set: ``"train"``, ``"val"``, ``"test"`` (any name of ``lengths``).
        appearance: the class vectors that drive the textures, a (C, d) array in
            ``class_names`` order, or an embedding config (a mapping with ``_target_``, e.g.
            the run's ``embedding`` group) instantiated with ``class_names=``.
        class_names: the classes; must include ``"background"`` (default: VOC's 21).
        lengths: images per image set, e.g. ``{"train": 3000, "val": 200, "test": 200}``.
        size: image side, or (H, W).
        seed: generator seed (appearance projection and every sample).
        min_objects, max_objects: objects per image.
        jitter: std of the per-instance texture-parameter noise (parameters live in [0, 1]).
        pixel_noise: std of the Gaussian pixel noise, 0-255 scale.
        transform: must be None (ZSSDataModule transforms items itself).

    Raises:
        ValueError: an unknown image set, no background class, a bad object count, or
            appearance vectors whose row count differs from the classes'.
    """

    def __init__(self, image_set: str = "train", appearance=None,
                 class_names: Sequence[str] = VOC_CLASSES,
                 lengths: Mapping[str, int] | None = None, size: int | Sequence[int] = 96,
                 seed: int = 0, min_objects: int = 1, max_objects: int = 3,
                 jitter: float = 0.02, pixel_noise: float = 4.0, transform=None) -> None:
        lengths = dict(DEFAULT_LENGTHS if lengths is None else lengths)
        if image_set not in lengths:
            raise ValueError(f"unknown image set {image_set!r}; the lengths name {sorted(lengths)}")
        self.class_names = tuple(class_names)
        if "background" not in self.class_names:
            raise ValueError("SyntheticSegmentation needs a 'background' class")
        if not 1 <= min_objects <= max_objects:
            raise ValueError(f"need 1 <= min_objects <= max_objects, got {min_objects}, "
                             f"{max_objects}")
        if appearance is None:
            raise ValueError("appearance: pass the class vectors or an embedding config")
        if isinstance(appearance, Mapping):
            from hydra.utils import instantiate

            appearance = instantiate(appearance, class_names=list(self.class_names))
        vectors = np.asarray(appearance, dtype=np.float64)
        if vectors.shape[0] != len(self.class_names):
            raise ValueError(f"appearance has {vectors.shape[0]} rows for "
                             f"{len(self.class_names)} classes")
        self.params = texture_parameters(vectors, seed)
        self.image_set, self.seed, self.transform = image_set, int(seed), transform
        self.size = (int(size), int(size)) if isinstance(size, int) else tuple(map(int, size))
        self.min_objects, self.max_objects = int(min_objects), int(max_objects)
        self.jitter, self.pixel_noise = float(jitter), float(pixel_noise)
        self.num_classes = len(self.class_names)
        self.background = self.class_names.index("background")
        self.objects = [i for i in range(self.num_classes) if i != self.background]
        self._grid = np.mgrid[0:self.size[0], 0:self.size[1]].astype(np.float32)
        self._split_code = zlib.crc32(image_set.encode())
        self.offset = int(np.random.default_rng([self.seed, self._split_code]).integers(1 << 16))
        self.ids = [f"{image_set}_{i:05d}" for i in range(int(lengths[image_set]))]
        self._presence: list[frozenset[int]] | None = None

    def __len__(self) -> int:
        return len(self.ids)

    # ---- generator ----------------------------------------------------------------------
    def _layout(self, index: int) -> tuple[list[tuple[int, np.ndarray, np.ndarray]],
                                           np.random.Generator]:
        """[(class, mask bool (H, W), jittered params (7,))] bottom to top, background first,
        and the generator for the pixel noise (drawn last)."""
        rng = np.random.default_rng([self.seed, self._split_code, index])
        h, w = self.size
        count = int(rng.integers(self.min_objects, self.max_objects + 1))
        classes = [self.objects[int(rng.integers(len(self.objects)))] for _ in range(count - 1)]
        classes.append(self.objects[(index + self.offset) % len(self.objects)])
        layers = [(self.background, np.ones((h, w), dtype=bool))]
        layers += [(c, self._shape(rng)) for c in classes]
        out = []
        for c, mask in layers:
            noise = rng.normal(0.0, self.jitter, len(PARAMS))
            out.append((c, mask, np.clip(self.params[c] + noise, 0.0, 1.0)))
        return out, rng

    def _shape(self, rng: np.random.Generator) -> np.ndarray:
        h, w = self.size
        side = min(h, w)
        cy, cx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
        radius = rng.uniform(0.12, 0.35) * side
        angle = rng.uniform(0.0, math.pi)
        if rng.random() < 0.5:  # ellipse
            dy, dx = self._grid[0] + 0.5 - cy, self._grid[1] + 0.5 - cx
            u = dx * math.cos(angle) + dy * math.sin(angle)
            v = -dx * math.sin(angle) + dy * math.cos(angle)
            return (u / radius) ** 2 + (v / (radius * rng.uniform(0.4, 1.0))) ** 2 <= 1.0
        n = int(rng.integers(3, 7))  # star-convex polygon
        theta = angle + np.sort(rng.uniform(0.0, 2 * math.pi, n))
        r = radius * rng.uniform(0.6, 1.0, n)
        canvas = Image.new("L", (w, h), 0)
        ImageDraw.Draw(canvas).polygon(
            list(zip(cx + r * np.cos(theta), cy + r * np.sin(theta), strict=True)), fill=1)
        return np.asarray(canvas, dtype=bool)

    def _texture(self, p: np.ndarray, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
        """(n, 3) float RGB, 0-255, of the texture with jittered parameters ``p`` at the n
        pixels of ``mask``."""
        colour = np.array(colorsys.hsv_to_rgb(0.8 * p[0], 0.3 + 0.65 * p[1], 0.35 + 0.6 * p[2]))
        period = 16.0 * (3.0 / 16.0) ** p[3]
        angle = math.pi * p[4]
        phase = rng.uniform(0.0, 2 * math.pi)
        along = self._grid[1][mask] * math.cos(angle) + self._grid[0][mask] * math.sin(angle)
        wave = np.sin(along * (2 * math.pi / period) + phase)
        k = 0.5 + 6.0 * p[6]
        wave = np.tanh(k * wave) / math.tanh(k)  # sharpness: sine -> near-square stripes
        shade = 1.0 - (0.1 + 0.8 * p[5]) * 0.5 * (1.0 + wave)
        return (255.0 * shade)[:, None] * colour

    def _label(self, layers) -> np.ndarray:
        label = np.empty(self.size, dtype=np.int64)
        for c, mask, _ in layers:
            label[mask] = c
        return label

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} images")
        layers, rng = self._layout(index)
        image = np.zeros((*self.size, 3), dtype=np.float32)
        label = self._label(layers)
        for c, mask, p in layers:
            visible = mask & (label == c)
            image[visible] = self._texture(p, rng, visible)
        image += self.pixel_noise * rng.standard_normal(image.shape, dtype=np.float32)
        image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        return {"image": torch.from_numpy(image).permute(2, 0, 1).contiguous(),
                "label": torch.from_numpy(label), "id": self.ids[index]}

    def class_presence(self) -> list[frozenset[int]]:
        """The classes present in every image, in ``ids`` order (layouts only, no rendering)."""
        if self._presence is None:
            self._presence = [frozenset(np.unique(self._label(self._layout(i)[0])).tolist())
                              for i in range(len(self))]
        return self._presence

    def __repr__(self) -> str:
        return (f"SyntheticSegmentation(image_set={self.image_set!r}, n={len(self)}, "
                f"size={self.size}, seed={self.seed})")
