"""The last line of defence at every file boundary: whatever a reader raises, the caller gets a
ZFNetError that names the file.

    with guard(path):
        net = read_it(path)

The readers validate what they read (types, counts, sizes) and raise ZFNetError themselves; this
catches what they did not foresee (an IndexError deep in a parser, a MemoryError, a RecursionError
from a nested structure), so a damaged or hostile file never escapes as a traceback. Such an error
carries ``unforeseen`` (the original exception's type name): the fuzz suite counts them, as each is
a check the reader should make itself.
"""
import contextlib
from pathlib import Path

from zfnet.errors import ZFNetError


def names_file(message, *paths):
    """Does `message` name one of the files `paths` (its full path or at least its file name)?"""
    return any(p is not None and (str(p) in message or Path(p).name in message) for p in paths)


@contextlib.contextmanager
def guard(path, what="weights file", also=None):
    """Re-raise any exception of the block as a ZFNetError naming `path` (ZFNetErrors that name
    neither `path` nor the companion file `also` get `path` prefixed). KeyboardInterrupt and
    SystemExit pass through."""
    try:
        yield
    except ZFNetError as e:
        if names_file(str(e), path, also):
            raise
        err = ZFNetError(f"{path}: {e}")
        err.unforeseen = getattr(e, "unforeseen", None)
        raise err from None
    except Exception as e:                 # MemoryError and RecursionError included
        kind = "too large to read" if isinstance(e, MemoryError) else "damaged or not a valid " + what
        err = ZFNetError(f"{path}: {kind} ({type(e).__name__}: {str(e)[:200]}); "
                         f"download or convert it again")
        err.unforeseen = type(e).__name__
        raise err from e
