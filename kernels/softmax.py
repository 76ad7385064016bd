"""softmax: placeholder until the kernel lands (being written now)."""


def softmax(*args, **kwargs):
    raise NotImplementedError("softmax is being written")
