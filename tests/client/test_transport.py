"""BleakTransport error paths, with a stand-in for a connected BleakClient.

The happy path runs against virtual boards in test_sim.py; here the client
misbehaves on purpose (no NUS service, failing writes, a late MTU).
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bleak.exc import BleakError
from esp32_ota_sim.clock import run_virtual

from custom_components.esp32_ota.nus_ota import (
    NUS_RX_UUID,
    NUS_TX_UUID,
    BleakTransport,
    DisconnectedError,
    TransportError,
)
from custom_components.esp32_ota.nus_ota.transport import CLOSE_TIMEOUT


class Char:
    def __init__(self, uuid: str, size: int = 244) -> None:
        self.uuid = uuid
        self.max_write_without_response_size = size


class Services:
    def __init__(self, chars: dict[str, Char]) -> None:
        self.chars = chars

    def get_characteristic(self, uuid: str) -> Char | None:
        return self.chars.get(uuid)


class FakeClient:
    """Just what BleakTransport uses of a BleakClient."""

    def __init__(self, chars: dict[str, Char] | None = None) -> None:
        if chars is None:
            chars = {NUS_RX_UUID: Char(NUS_RX_UUID), NUS_TX_UUID: Char(NUS_TX_UUID)}
        self.services = Services(chars)
        self.is_connected = True
        self.notify: Any = None
        self.writes: list[tuple[bytes, bool]] = []
        self.fail_write: BleakError | None = None
        self.stopped = False
        self.disconnected = False

    async def start_notify(self, char: Char, callback: Any) -> None:
        self.notify = callback

    async def write_gatt_char(self, char: Char, data: bytes, response: bool) -> None:
        if self.fail_write is not None:
            raise self.fail_write
        self.writes.append((bytes(data), response))

    async def stop_notify(self, uuid: str) -> None:
        self.stopped = True
        raise BleakError("already gone")

    async def disconnect(self) -> None:
        self.disconnected = True


def test_notifications_writes_and_disconnect() -> None:
    fake = FakeClient()
    got: list[bytes] = []
    lost: list[bool] = []

    async def go() -> None:
        transport = await BleakTransport.open(_returns(fake))
        await transport.start(got.append, lambda: lost.append(True))
        assert transport.max_write == 244
        assert transport.is_connected
        fake.notify(None, bytearray(b"OTA:OK\n"))
        await transport.write(b"OTA:HELLO\n", response=True)
        fake.fail_write = BleakError("congested")
        with pytest.raises(TransportError):
            await transport.write(b"OTA:D:0:AA\n", response=False)
        fake.is_connected = False
        transport.handle_disconnect(None)
        transport.handle_disconnect(None)  # bleak may call twice: reported once
        assert not transport.is_connected
        with pytest.raises(DisconnectedError):
            await transport.write(b"OTA:HELLO\n", response=True)
        await transport.close()
        await transport.close()

    run_virtual(go())
    assert got == [b"OTA:OK\n"]
    assert lost == [True]
    assert fake.writes == [(b"OTA:HELLO\n", True)]
    assert fake.disconnected


def test_write_error_on_a_dropped_link_is_a_disconnect() -> None:
    fake = FakeClient()

    async def go() -> None:
        transport = BleakTransport(fake)  # type: ignore[arg-type]
        await transport.start(lambda _d: None, lambda: None)
        fake.fail_write = BleakError("not connected")
        fake.is_connected = False  # the link died; bleak's callback not yet run
        with pytest.raises(DisconnectedError):
            await transport.write(b"x\n", response=False)

    run_virtual(go())


def test_device_without_nus() -> None:
    fake = FakeClient({NUS_TX_UUID: Char(NUS_TX_UUID)})

    async def go() -> None:
        transport = BleakTransport(fake)  # type: ignore[arg-type]
        with pytest.raises(TransportError):
            await transport.start(lambda _d: None, lambda: None)
        with pytest.raises(TransportError):
            await transport.write(b"x\n", response=False)
        assert transport.max_write == 20

    run_virtual(go())


def test_waits_briefly_for_the_mtu_exchange() -> None:
    rx = Char(NUS_RX_UUID, size=20)
    fake = FakeClient({NUS_RX_UUID: rx, NUS_TX_UUID: Char(NUS_TX_UUID)})

    async def go() -> tuple[int, float]:
        transport = BleakTransport(fake)  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        loop.call_later(0.5, setattr, rx, "max_write_without_response_size", 244)
        start = loop.time()
        await transport.start(lambda _d: None, lambda: None)
        return transport.max_write, loop.time() - start

    size, waited = run_virtual(go())
    assert size == 244
    assert 0.5 <= waited < 1.0

    stuck = FakeClient(
        {NUS_RX_UUID: Char(NUS_RX_UUID, 20), NUS_TX_UUID: Char(NUS_TX_UUID)}
    )

    async def go_stuck() -> int:
        transport = BleakTransport(stuck)  # type: ignore[arg-type]
        await transport.start(lambda _d: None, lambda: None)
        return transport.max_write

    assert run_virtual(go_stuck()) == 20  # bounded wait, then the stack's value


def test_transport_without_client() -> None:
    transport = BleakTransport()
    with pytest.raises(DisconnectedError):
        _ = transport.client
    assert not transport.is_connected
    run_virtual(transport.close())


def _returns(fake: FakeClient) -> Any:
    async def connect(callback: Any) -> FakeClient:
        assert callable(callback)
        return fake

    return connect


class HangingCloseClient(FakeClient):
    """A stack whose unsubscribe and disconnect never complete."""

    async def stop_notify(self, uuid: str) -> None:
        self.stopped = True
        await asyncio.Event().wait()

    async def disconnect(self) -> None:
        self.disconnected = True
        await asyncio.Event().wait()


def test_closing_on_a_hung_stack_is_bounded() -> None:
    fake = HangingCloseClient()

    async def go() -> float:
        transport = await BleakTransport.open(_returns(fake))
        await transport.start(lambda _data: None, lambda: None)
        loop = asyncio.get_running_loop()
        begin = loop.time()
        async with asyncio.timeout(60):  # unbounded before: would never return
            await transport.close()
        return loop.time() - begin

    assert run_virtual(go()) == pytest.approx(2 * CLOSE_TIMEOUT)
    assert fake.stopped
    assert fake.disconnected
