"""The advertised OTA state: the library's decoder against the firmware's encoder."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from custom_components.esp32_ota.nus_ota.advert import (
    SERVICE_UUID,
    AdvertisedState,
    bundle_hash,
    parse_advertised_state,
)
from custom_components.esp32_ota.nus_ota.auth import hello_signed
from custom_components.esp32_ota.nus_ota.board_info import (
    InstalledFile,
    parse_board_info,
)
from custom_components.esp32_ota.nus_ota.replies import Hello, parse_reply

if TYPE_CHECKING:
    from pathlib import Path

    import pytest


def _service_data(ad: bytes) -> dict[str, bytes]:
    """The service data of one firmware AD structure, keyed as bleak keys it."""
    assert ad[0] == len(ad) - 1
    assert ad[1] == 0x16
    uuid16 = int.from_bytes(ad[2:4], "little")
    return {f"0000{uuid16:04x}-0000-1000-8000-00805f9b34fb": ad[4:]}


def test_known_answer_of_the_firmware_scenario(board_fs: Path) -> None:
    # fw_advert.py checks the firmware's encoder (CPython and MicroPython)
    # against the same vector.
    scenario = importlib.import_module("fw_advert")
    files = {
        name: None if f is None else InstalledFile(f["size"], f["crc"], f["ver"])
        for name, f in scenario.VECTOR.items()
    }
    ad = bytes.fromhex(scenario.VECTOR_AD)
    state = parse_advertised_state(_service_data(ad))
    assert state == AdvertisedState(
        proto=2,
        bundle=bundle_hash(files),
        on_trial=True,
        rolled_back=False,
        staged=True,
    )


def test_a_board_advertises_the_bundle_of_its_hello(board_fs: Path) -> None:
    (board_fs / "app.py").write_text("VERSION = 1\n")
    ota_manager = importlib.import_module("ota_manager")
    ota_advert = importlib.import_module("ota_advert")
    replies: list[str] = []
    manager = ota_manager.OTAManager(replies.append)
    manager.handle("OTA:HELLO")
    info = parse_board_info(replies[0].removeprefix("OTA:HELLO:"))
    ad = ota_advert.state(manager)
    state = parse_advertised_state(_service_data(ad))
    assert state is not None
    assert state.bundle == bundle_hash(info.files)
    assert state.proto == info.proto
    assert (state.on_trial, state.rolled_back, state.staged) == (False, False, False)


def test_short_missing_and_longer_data(caplog: pytest.LogCaptureFixture) -> None:
    assert parse_advertised_state({}) is None
    assert parse_advertised_state({SERVICE_UUID: b"\x02\x00\x00\x00\x00"}) is None
    longer = parse_advertised_state({SERVICE_UUID: b"\x02\xfa\x00\x00\x01\x00\xff"})
    assert longer == AdvertisedState(2, 256, False, True, False)
    assert bundle_hash({}) == 0
    assert bundle_hash({"a.py": None}) == 0
    one = {"a.py": InstalledFile(1, "00000000", None)}
    assert bundle_hash(one) != bundle_hash({"a.py": InstalledFile(1, "00000000", "1")})


def test_a_signed_hello_verifies_with_the_key_only(board_fs: Path) -> None:
    (board_fs / "config.py").write_text('VERSION = "1.0.0"\nAUTH_KEY = "k3y"\n')
    ota_manager = importlib.import_module("ota_manager")
    ota_manager.OTAManager.AUTH_KEY = "k3y"
    replies: list[str] = []
    manager = ota_manager.OTAManager(replies.append)
    challenge = "0123456789abcdef0123456789abcdef"
    manager.handle("OTA:HELLO:" + challenge)
    reply = parse_reply(replies[-1])
    assert isinstance(reply, Hello)
    assert hello_signed("k3y", challenge, reply.text)
    assert not hello_signed("other key", challenge, reply.text)
    assert not hello_signed("k3y", "f" * 32, reply.text)
    forged = reply.text.replace(
        '"rollback":null', '"rollback":{"ver":"2","restored":"1"}'
    )
    assert forged != reply.text
    assert not hello_signed("k3y", challenge, forged)
    manager.handle("OTA:HELLO")
    unsigned = parse_reply(replies[-1])
    assert isinstance(unsigned, Hello)
    assert not hello_signed("k3y", challenge, unsigned.text)
