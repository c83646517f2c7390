"""The base class of errors caused by a user's input (data, config, files)."""


class UserInputError(Exception):
    """Bad input that the user can fix: the message names the file, class or key at fault
    and says how to fix it. ``python -m zss.run`` prints it as one paragraph, without a
    traceback, and exits with status 2."""


class ConfigError(UserInputError, ValueError):
    """A run configuration that cannot work (e.g. stage 2 without a stage-1 model)."""


class EmbeddingError(UserInputError, ValueError):
    """Class embeddings that cannot be built or read: a j the source cannot give, a
    word-vector file in no supported format, a table whose rows do not match the classes.
    The message names the source or file and the config key to change."""


class EmbeddingDimensionError(EmbeddingError):
    """The configured class-embedding source cannot give this j: j above the word vectors'
    dimension, or no published table for it. In a sweep (``-m``) such a job is recorded as
    ``skipped`` with this message instead of failing (the embedding-dimension ablation asks
    for j = 1 ... 300 of every source)."""


def user_error(err: BaseException | None) -> BaseException | None:
    """The user-input error behind ``err`` (a :class:`UserInputError` or a missing file),
    following ``__cause__`` (Hydra wraps errors raised in ``instantiate``); None when the
    error is not the user's."""
    while err is not None:
        if isinstance(err, (UserInputError, FileNotFoundError)):
            return err
        err = err.__cause__
    return None
