"""Client of the NUS OTA protocol (v1 and v2) for MicroPython ESP32 boards.

No Home Assistant imports. A sans-I/O core (`lines`, `replies`,
`board_info`, `auth`, `transfer`), a bleak transport (`transport`), the
conversation over one connection (`client`) and a whole update (`install`).
Home Assistant only supplies the connection:

    async def connect() -> BleakTransport:
        return await BleakTransport.open(
            lambda on_disconnect: establish_connection(
                BleakClientWithServiceCache, device, name, on_disconnect
            )
        )

    result = await install(connect, {"app.py": data}, "1.2.0", InstallOptions())
    info = await probe(connect)  # BoardInfo, or None for a v1 board

A v1 board has no HELLO; its application's version is read with
`OTAClient.ask_v1_version()` (the line `VERSION`, answered `VERSION:<x>`),
the one v1 probe Home Assistant should use. Version texts a board reports
that the client cannot use count as unknown (`usable_version`); tokens are
checked with `valid_token`, the rule the line builders apply.

Failures raise subclasses of `OTAError` (see `errors`); none quotes a key or
token.

The package stands alone (bleak is its only dependency, imports are
relative) and has a command line, `cli`:

    PYTHONPATH=custom_components/esp32_ota python -m nus_ota scan
    PYTHONPATH=custom_components/esp32_ota python -m nus_ota info --address ADDR
    PYTHONPATH=custom_components/esp32_ota python -m nus_ota push FILE... \
        --address ADDR [--version V] [--key KEY | --token TOKEN] [--force]
"""

from . import errors
from .auth import Credentials
from .board_info import (
    BoardInfo,
    CrashReport,
    InstalledFile,
    Rollback,
    StagedFile,
    Trial,
    usable_version,
)
from .client import ClientOptions, FileImage, OTAClient, ProgressCallback
from .errors import *  # noqa: F403 - exported below
from .install import Connect, InstallOptions, InstallResult, install, probe
from .lines import valid_token
from .transport import (
    NUS_RX_UUID,
    NUS_SERVICE_UUID,
    NUS_TX_UUID,
    BleakTransport,
    Transport,
)

__all__ = [
    "NUS_RX_UUID",
    "NUS_SERVICE_UUID",
    "NUS_TX_UUID",
    "BleakTransport",
    "BoardInfo",
    "ClientOptions",
    "Connect",
    "CrashReport",
    "Credentials",
    "FileImage",
    "InstallOptions",
    "InstallResult",
    "InstalledFile",
    "OTAClient",
    "ProgressCallback",
    "Rollback",
    "StagedFile",
    "Transport",
    "Trial",
    "install",
    "probe",
    "usable_version",
    "valid_token",
]
# and every error the client raises, as errors.__all__ lists them
__all__ += errors.__all__
