"""A file the board does not allow fails the install before anything is sent.

The board would refuse its FILE too, but only after the files before it in
the bundle went over the air and sit staged on its flash, never applied.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from custom_components.esp32_ota.nus_ota import RejectedError

from .loopback import Connector, LoopbackBoard
from .test_install import FILES, go, lines_sent

if TYPE_CHECKING:
    from pathlib import Path


def test_a_bundle_with_one_file_not_allowed_sends_nothing(board_fs: Path) -> None:
    connector = Connector(LoopbackBoard())
    files = {**FILES, "boot.py": b"print('not in ALLOWED_FILES')\n"}
    with pytest.raises(RejectedError) as err:
        go(connector, files)
    assert err.value.reason == "FORBIDDEN"
    assert lines_sent(connector, "OTA:FILE:") == 0
    assert lines_sent(connector, "OTA:D:") == 0
    assert not list(board_fs.glob("*.new"))
    assert connector.open_connections == 0
