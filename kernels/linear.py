"""linear: placeholder until the kernel lands (being written now)."""


def linear(*args, **kwargs):
    raise NotImplementedError("linear is being written")
