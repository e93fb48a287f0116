"""Stand-in for MicroPython's `micropython` module on CPython.

On MicroPython (and its WebAssembly port) the built-in module wins over this
file. `schedule` runs the callback at once; a `VirtualBoard` replaces it with
its own queue, run after the IRQ handler returns, as on a board.
"""


def const(value):
    return value


def schedule(func, arg):
    func(arg)


def alloc_emergency_exception_buf(size):
    pass


def mem_info(*_args):
    pass


def qstr_info(*_args):
    pass


def opt_level(*_args):
    return 0


def heap_lock():
    return 0


def heap_unlock():
    return 0


def kbd_intr(_chr):
    pass


def native(func):
    return func


def viper(func):
    return func
