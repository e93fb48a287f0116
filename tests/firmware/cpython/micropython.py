"""CPython stand-in for MicroPython's `micropython` module (firmware tests only)."""


def const(value):
    return value


def schedule(func, arg):
    func(arg)


def alloc_emergency_exception_buf(size):
    pass
