"""One virtual board's MicroPython world, built from stand-ins on CPython.

`Runtime` is one boot's: a private module table and `__import__` (modules
load from the board's filesystem, then the stand-ins in stand_ins/, then
the host modules MicroPython also has), builtins whose `open` and `print`
are the board's, and `os`, `gc`, `sys` and `micropython` made for it.
`make_time_module` and `load_machine` build the two modules a board keeps
over its boots: `time` on the board's clock and the `machine` stand-in
(its reset count survives a reboot).
"""

from __future__ import annotations

import builtins
import hashlib
import time as _host_time
import traceback
import types
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .ticks import tick_functions

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from .board import VirtualBoard

__all__ = [
    "STAND_INS_DIR",
    "Runtime",
    "load_machine",
    "make_time_module",
]

STAND_INS_DIR = Path(__file__).resolve().parent / "stand_ins"

# Host modules the firmware may import as they are (MicroPython has them too),
# with MicroPython's "u" aliases.
_HOST_MODULES = {
    "array": "array",
    "asyncio": "asyncio",
    "binascii": "binascii",
    "collections": "collections",
    "errno": "errno",
    "hashlib": "hashlib",
    "heapq": "heapq",
    "io": "io",
    "json": "json",
    "math": "math",
    "random": "random",
    "re": "re",
    "select": "select",
    "struct": "struct",
    "uasyncio": "asyncio",
    "ubinascii": "binascii",
    "ucollections": "collections",
    "uerrno": "errno",
    "uhashlib": "hashlib",
    "uheapq": "heapq",
    "uio": "io",
    "ujson": "json",
    "ure": "re",
    "uselect": "select",
    "ustruct": "struct",
}
_ALIASES = {"uos": "os", "utime": "time", "ubluetooth": "bluetooth", "usys": "sys"}


_code_cache: dict[tuple[str, bytes], types.CodeType] = {}


def _compile(source: bytes, filename: str) -> types.CodeType:
    """`source` compiled once per file name and content (boards share it)."""
    key = (filename, hashlib.sha256(source).digest())
    code = _code_cache.get(key)
    if code is None:
        code = compile(source, filename, "exec")
        _code_cache[key] = code
    return code


class Runtime:
    """One boot's world: module table, builtins and the board-specific modules."""

    def __init__(self, board: VirtualBoard) -> None:
        self.board = board
        self.modules: dict[str, types.ModuleType] = {}
        self.scheduled: deque[tuple[Callable[[Any], Any], Any]] = deque()
        self.builtins = dict(builtins.__dict__)
        self.builtins["__import__"] = self.import_
        self.builtins["open"] = board.fs.open
        self.builtins["print"] = self._print
        self.modules["os"] = self._make_os()
        self.modules["time"] = board.time_module
        self.modules["gc"] = self._make_gc()
        self.modules["micropython"] = self._make_micropython()
        self.modules["sys"] = self._make_sys()
        self.modules["machine"] = board.machine

    # -- imports -------------------------------------------------------------

    def import_(
        self,
        name: str,
        globals_: Mapping[str, Any] | None = None,
        locals_: Mapping[str, Any] | None = None,
        fromlist: Iterable[str] | None = (),
        level: int = 0,
    ) -> types.ModuleType:
        if level:
            raise ImportError("relative imports do not exist on the board")
        top, _, rest = name.partition(".")
        module = self.load(top)
        if rest:
            if top not in _HOST_MODULES:
                raise ImportError(f"no module named '{name}'")
            return builtins.__import__(
                _HOST_MODULES[top] + "." + rest, None, None, list(fromlist or ()), 0
            )
        return module

    def load(self, name: str) -> types.ModuleType:
        name = _ALIASES.get(name, name)
        module = self.modules.get(name)
        if module is not None:
            return module
        fs = self.board.fs
        for path in (f"/{name}.py", f"/lib/{name}.py"):
            if path in fs._files:
                return self.exec_module(name, fs._files[path].data, path)
        if name == "bluetooth":
            return self.exec_stand_in(name)
        if name == "deflate" and self.board.has_deflate:
            board = self.board
            module = self.exec_stand_in(name, host_imports=True)
            module.decoded_sink = lambda nbytes: board.spend_ms(
                nbytes * board.speed.inflate_us_per_byte / 1000
            )
            return module
        if name in _HOST_MODULES:
            module = builtins.__import__(_HOST_MODULES[name])
            self.modules[name] = module
            return module
        raise ImportError(f"no module named '{name}'")

    def exec_module(
        self, name: str, source: bytes, path: str, *, host_imports: bool = False
    ) -> types.ModuleType:
        module = types.ModuleType(name)
        module.__file__ = path
        module.__dict__["__builtins__"] = (
            builtins.__dict__ if host_imports else self.builtins
        )
        self.modules[name] = module
        code = _compile(source, f"<{self.board.address}>{path}")
        try:
            exec(code, module.__dict__)
        except BaseException:
            self.modules.pop(name, None)
            raise
        return module

    def exec_stand_in(
        self, name: str, *, host_imports: bool = False
    ) -> types.ModuleType:
        """A stand-in from STAND_INS_DIR; `host_imports`: it imports the host's
        modules (deflate's zlib), not the board's."""
        source = (STAND_INS_DIR / f"{name}.py").read_bytes()
        return self.exec_module(
            name, source, f"<stand-in>/{name}.py", host_imports=host_imports
        )

    def run_script(self, path: str) -> None:
        source = self.board.fs._files[path].data
        namespace: dict[str, Any] = {
            "__name__": "__main__",
            "__file__": path,
            "__builtins__": self.builtins,
        }
        exec(_compile(source, f"<{self.board.address}>{path}"), namespace)

    def run_scheduled(self) -> None:
        while self.scheduled:
            func, arg = self.scheduled.popleft()
            func(arg)

    # -- board-specific modules ----------------------------------------------

    def _print(
        self,
        *args: Any,
        sep: str | None = " ",
        end: str | None = "\n",
        file: Any = None,
        **_: Any,
    ) -> None:
        text = (sep if sep is not None else " ").join(str(a) for a in args) + (
            end if end is not None else "\n"
        )
        if file is not None and hasattr(file, "write"):
            file.write(text)
            return
        self.board.console_write(text)

    def _make_os(self) -> types.ModuleType:
        fs = self.board.fs
        os_mod = types.ModuleType("os")
        for attr in (
            "rename",
            "remove",
            "unlink",
            "stat",
            "statvfs",
            "listdir",
            "ilistdir",
            "mkdir",
            "rmdir",
            "getcwd",
            "chdir",
            "urandom",
            "sync",
        ):
            setattr(os_mod, attr, getattr(fs, attr))
        os_mod.__dict__["sep"] = "/"
        os_mod.__dict__["uname"] = lambda: types.SimpleNamespace(
            sysname="esp32",
            nodename="esp32",
            release="1.27.0",
            version="v1.27.0 (esp32_ota_sim)",
            machine="Virtual ESP32 with ESP32",
        )
        os_mod.__dict__["dupterm"] = lambda *_a: None
        return os_mod

    def _make_gc(self) -> types.ModuleType:
        gc_mod = types.ModuleType("gc")
        gc_mod.__dict__["collect"] = lambda: None
        gc_mod.__dict__["enable"] = lambda: None
        gc_mod.__dict__["disable"] = lambda: None
        gc_mod.__dict__["isenabled"] = lambda: True
        gc_mod.__dict__["mem_free"] = lambda: self.board.HEAP_FREE
        gc_mod.__dict__["mem_alloc"] = lambda: (
            self.board.HEAP_SIZE - self.board.HEAP_FREE
        )
        gc_mod.__dict__["threshold"] = lambda *_a: -1
        return gc_mod

    def _make_micropython(self) -> types.ModuleType:
        mp = self.exec_stand_in("micropython")
        mp.__dict__["schedule"] = lambda func, arg: self.scheduled.append((func, arg))
        return mp

    def _make_sys(self) -> types.ModuleType:
        board = self.board
        sys_mod = types.ModuleType("sys")

        class _Console:
            def write(self, text: str) -> int:
                board.console_write(text)
                return len(text)

        def print_exception(exc: BaseException, file: Any = None) -> None:
            text = "".join(traceback.format_exception(exc))
            (file or _Console()).write(text)

        def exit_(code: int = 0) -> None:
            raise SystemExit(code)

        sys_mod.__dict__["modules"] = self.modules
        sys_mod.__dict__["path"] = ["", "/lib"]
        sys_mod.__dict__["argv"] = []
        sys_mod.__dict__["platform"] = "esp32"
        sys_mod.__dict__["byteorder"] = "little"
        sys_mod.__dict__["maxsize"] = 2**31 - 1
        sys_mod.__dict__["version"] = "3.4.0; MicroPython v1.27.0 (esp32_ota_sim)"
        sys_mod.__dict__["implementation"] = types.SimpleNamespace(
            name="micropython",
            version=(1, 27, 0, ""),
            _machine="Virtual ESP32 with ESP32",
            _mpy=0,
        )
        sys_mod.__dict__["stdout"] = _Console()
        sys_mod.__dict__["stderr"] = sys_mod.stdout
        sys_mod.__dict__["print_exception"] = print_exception
        sys_mod.__dict__["exit"] = exit_
        return sys_mod


def make_time_module(board: VirtualBoard) -> types.ModuleType:
    """MicroPython's `time` on the board's clock (shared by all its boots)."""
    t = types.ModuleType("time")
    t.__dict__.update(tick_functions(board.now_ms, board.spend_ms))

    def time_() -> int:
        return int(board.epoch + board.now_ms() / 1000)

    def time_ns() -> int:
        return int((board.epoch + board.now_ms() / 1000) * 1e9)

    t.__dict__["sleep"] = lambda seconds: board.spend_ms(seconds * 1000)
    t.__dict__["time"] = time_
    t.__dict__["time_ns"] = time_ns
    t.__dict__["localtime"] = lambda secs=None: _host_time.gmtime(
        time_() if secs is None else secs
    )[:8]
    t.__dict__["gmtime"] = t.localtime
    t.__dict__["mktime"] = lambda tup: int(_host_time.mktime((*tup[:8], 0)))
    return t


def load_machine(address: str, time_module: types.ModuleType) -> types.ModuleType:
    """The machine stand-in, once per board (its reset count survives boots)."""
    module = types.ModuleType("machine")
    module.__file__ = "<stand-in>/machine.py"
    source = (STAND_INS_DIR / "machine.py").read_bytes()
    host_import = builtins.__import__

    def import_(name: str, *args: Any, **kwargs: Any) -> types.ModuleType:
        if name in ("time", "utime"):
            return time_module
        return host_import(name, *args, **kwargs)

    module.__dict__["__builtins__"] = {**builtins.__dict__, "__import__": import_}
    exec(_compile(source, f"<{address}><stand-in>/machine.py"), module.__dict__)
    return module
