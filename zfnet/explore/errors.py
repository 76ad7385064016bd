"""The explorer's errors: a ZFNetError the API answers with 400, or with 404 when a thing named in
the URL (a layer, a map, an image id, a job) does not exist."""
from zfnet.errors import ZFNetError


class NotFound(ZFNetError):
    """Something the URL names does not exist (HTTP 404)."""


class TooLarge(ZFNetError):
    """An upload over the size limit (HTTP 413)."""
