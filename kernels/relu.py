"""relu: placeholder until the kernel lands (being written now)."""


def relu(*args, **kwargs):
    raise NotImplementedError("relu is being written")
