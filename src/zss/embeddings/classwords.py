"""Class name -> the words looked up in a word-vector model (docs/embeddings.md, "The
recipe").

Dataset class names glue words together (``pottedplant``, ``diningtable``, ``tvmonitor``);
word-vector models hold the separate words. :data:`CLASS_WORDS` states, for every PASCAL VOC
class and every class of the PASCAL-Context sets (33 and 59 classes), the words whose vectors
are averaged. Other projects embedded these names differently (ZS3 and SPNet rows for the
multi-word classes disagree), so this table is one documented choice, not "the" recipe.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from gensim.models import KeyedVectors

from zss.runtime.errors import EmbeddingError

CLASS_WORDS: dict[str, tuple[str, ...]] = {
    # PASCAL VOC, in VOC_CLASSES order
    "background": ("background",),
    "aeroplane": ("aeroplane",),
    "bicycle": ("bicycle",),
    "bird": ("bird",),
    "boat": ("boat",),
    "bottle": ("bottle",),
    "bus": ("bus",),
    "car": ("car",),
    "cat": ("cat",),
    "chair": ("chair",),
    "cow": ("cow",),
    "diningtable": ("dining", "table"),
    "dog": ("dog",),
    "horse": ("horse",),
    "motorbike": ("motorbike",),
    "person": ("person",),
    "pottedplant": ("potted", "plant"),
    "sheep": ("sheep",),
    "sofa": ("sofa",),
    "train": ("train",),
    "tvmonitor": ("tv", "monitor"),
    # the extra classes of the 33-class PASCAL-Context set (CONTEXT33_CLASSES)
    "sky": ("sky",),
    "grass": ("grass",),
    "ground": ("ground",),
    "road": ("road",),
    "building": ("building",),
    "tree": ("tree",),
    "water": ("water",),
    "mountain": ("mountain",),
    "wall": ("wall",),
    "floor": ("floor",),
    "track": ("track",),
    "keyboard": ("keyboard",),
    "ceiling": ("ceiling",),
    # the other classes of the 59-class PASCAL-Context task (CONTEXT59_CLASSES)
    "bag": ("bag",),
    "bed": ("bed",),
    "bench": ("bench",),
    "book": ("book",),
    "cabinet": ("cabinet",),
    "clothes": ("clothes",),
    "computer": ("computer",),
    "cup": ("cup",),
    "door": ("door",),
    "fence": ("fence",),
    "flower": ("flower",),
    "food": ("food",),
    "light": ("light",),
    "mouse": ("mouse",),
    "curtain": ("curtain",),
    "platform": ("platform",),
    "sign": ("sign",),
    "plate": ("plate",),
    "rock": ("rock",),
    "shelves": ("shelves",),
    "sidewalk": ("sidewalk",),
    "snow": ("snow",),
    "bedcloth": ("bed", "cloth"),
    "truck": ("truck",),
    "window": ("window",),
    "wood": ("wood",),
}
"""Class name -> words looked up; the class vector is the **mean** of the word vectors.

Covers the 21 VOC classes (``background`` … ``tvmonitor``), the 13 extra classes of the
33-class Context set (``sky`` … ``ceiling``) and the other 26 of the 59-class Context task
(``bag`` … ``wood``); a test checks it covers ``VOC_CLASSES`` and every Context class set.
``bedcloth`` (``bedclothes`` in PASCAL-Context's labels) is ``(bed, cloth)``. Single-word names map to themselves, e.g.
``"aeroplane" -> ("aeroplane",)``, ``"motorbike" -> ("motorbike",)``; the multi-word ones are
``diningtable -> (dining, table)``, ``pottedplant -> (potted, plant)``,
``tvmonitor -> (tv, monitor)``. Every word is lower-case and present in GloVe 6B
(checked against ``shared/data/word-vectors/glove6B50d_classwords.w2v.txt``); GoogleNews
word2vec is case-sensitive and could not be checked offline — :func:`class_vectors` tries each
word as written, then lower-cased, and raises :class:`MissingWordError` otherwise."""


class MissingWordError(EmbeddingError, KeyError):
    """A word of a class name is not in the word-vector vocabulary (a ``KeyError`` and a
    ``ValueError``); the message names the word, the class and the source."""

    def __str__(self) -> str:  # KeyError would print the message quoted
        return str(self.args[0]) if self.args else ""


def lookup_words(class_names: Sequence[str],
                 words: Mapping[str, Sequence[str]] = CLASS_WORDS) -> set[str]:
    """Every vocabulary entry :func:`class_vectors` may look up for ``class_names``: each of
    their words as written and lower-cased (e.g. to load only those from a large model)."""
    return {form for name in class_names for word in words.get(name, (name,))
            for form in (word, word.lower())}


def _lookup(kv: KeyedVectors, word: str) -> str | None:
    """Exact word first, then its lower-case form (GoogleNews is case-sensitive)."""
    for candidate in (word, word.lower()):
        if candidate in kv.key_to_index:
            return candidate
    return None


def class_vectors(
    kv: KeyedVectors,
    class_names: Sequence[str],
    words: Mapping[str, Sequence[str]] = CLASS_WORDS,
    *,
    source: str | None = None,
) -> np.ndarray:
    """Raw (un-projected, un-normalised) word vectors of the classes.

    Each class is looked up as ``words[name]`` (a class without an entry is looked up as its
    own name, one word); its vector is the mean of its words' vectors. A word is tried as
    written, then lower-cased (the only fallback).

    Args:
        kv: word vectors, D-dimensional.
        class_names: C class names, in the order of the output rows.
        words: class name -> words looked up (default :data:`CLASS_WORDS`).
        source: where ``kv`` came from, only for error messages.

    Returns:
        float32 array (C, D), rows in ``class_names`` order, values as in the model.

    Raises:
        MissingWordError (a KeyError and ValueError): a word missing from the vocabulary;
            names the word, the class and the source. Never a silent zero vector.
        ValueError: a class mapped to an empty word list.
    """
    rows = []
    for name in class_names:
        class_words = tuple(words.get(name, (name,)))
        if not class_words:
            raise ValueError(f"class {name!r} maps to no words in the class-word table")
        keys = []
        for word in class_words:
            key = _lookup(kv, word)
            if key is None:
                where = f" of {source}" if source else ""
                what = (f"word {word!r} (class {name!r}, words {list(class_words)})"
                        if name in words else
                        f"class {name!r} is in no entry of the class-word table "
                        "(zss.embeddings.CLASS_WORDS), so it was looked up as one word, and "
                        f"{word!r}")
                raise MissingWordError(
                    f"{what} is not in the vocabulary{where} ({len(kv.key_to_index)} words; "
                    "tried as written and lower-cased). Give the class words that the source "
                    f"has, e.g. embedding.extra_words={{{name}:[word1,word2]}}, use word "
                    "vectors that have it (embedding.source), or load more of them (a larger "
                    "embedding.limit, if one is set)."
                )
            keys.append(key)
        rows.append(np.mean([np.asarray(kv[k], dtype=np.float64) for k in keys], axis=0))
    if not rows:
        return np.zeros((0, kv.vector_size), dtype=np.float32)
    return np.stack(rows).astype(np.float32)
