"""SimBleakClient used through bleak's own BleakClient."""

from __future__ import annotations

import asyncio

import pytest
from bleak import BleakClient
from bleak.backends.device import BLEDevice
from bleak.exc import BleakDeviceNotFoundError, BleakError
from bleak_retry_connector import BleakOutOfConnectionSlotsError, establish_connection
from esp32_ota_sim.bleak_backend import (
    CCCD_UUID,
    LOCAL_SOURCE,
    NUS_RX_UUID,
    NUS_SERVICE_UUID,
    NUS_TX_UUID,
    SimBleakClient,
    connection_slots,
    register_board,
    set_connection_slots,
)
from esp32_ota_sim.board import VirtualBoard
from esp32_ota_sim.clock import run_virtual


class Lines:
    """Notification callback that joins notifications into lines."""

    def __init__(self) -> None:
        self.buffer = b""
        self.sizes: list[int] = []
        self.event = asyncio.Event()

    def __call__(self, _sender: object, data: bytearray) -> None:
        self.sizes.append(len(data))
        self.buffer += bytes(data)
        self.event.set()

    def lines(self) -> list[bytes]:
        return self.buffer.splitlines()


def test_bleak_client_talks_to_the_board() -> None:
    async def scenario() -> tuple[BleakClient, Lines, int, int]:
        board = VirtualBoard()
        register_board(board, "proxy")
        got = Lines()
        async with BleakClient(board.address, backend=SimBleakClient) as client:
            service = client.services.get_service(NUS_SERVICE_UUID)
            assert service is not None
            rx = client.services.get_characteristic(NUS_RX_UUID)
            assert rx is not None
            assert set(rx.properties) == {"write", "write-without-response"}
            await client.start_notify(NUS_TX_UUID, got)
            tx = client.services.get_characteristic(NUS_TX_UUID)
            assert tx is not None
            cccd = tx.get_descriptor(CCCD_UUID)
            assert cccd is not None
            assert await client.read_gatt_descriptor(cccd.handle) == b"\x01\x00"
            await client.write_gatt_char(NUS_RX_UUID, b"PING\n", response=True)
            client_mtu = client.mtu_size
            max_write = rx.max_write_without_response_size
            await client.write_gatt_char(NUS_RX_UUID, b"OTA:HELLO\n", response=False)
            await asyncio.sleep(0.5)
            assert client.name == board.name
        return client, got, client_mtu, max_write

    client, got, mtu, max_write = run_virtual(scenario())
    assert (mtu, max_write) == (247, 244)
    lines = got.lines()
    assert lines[0] == b"PONG"
    assert lines[1].startswith(b"OTA:HELLO:{")
    assert len(lines[1]) > 244  # split by the board ...
    assert max(got.sizes) <= 244  # ... into notifications of at most MTU - 3
    assert not client.is_connected


def test_oversized_and_wrong_writes_raise() -> None:
    async def scenario() -> None:
        board = VirtualBoard()
        register_board(board, "local")
        device = BLEDevice(board.address, None, {})
        async with BleakClient(device, backend=SimBleakClient) as client:
            assert client.mtu_size == 256
            with pytest.raises(BleakError):
                await client.write_gatt_char(NUS_RX_UUID, b"x" * 254, response=False)
            with pytest.raises(BleakError):
                await client.write_gatt_char(NUS_TX_UUID, b"x", response=True)
            got = Lines()
            await client.start_notify(NUS_TX_UUID, got)
            with pytest.raises(BleakError):
                await client.start_notify(NUS_TX_UUID, got)
            await client.stop_notify(NUS_TX_UUID)
            await client.write_gatt_char(NUS_RX_UUID, b"PING\n", response=True)
            await asyncio.sleep(0.2)
            assert got.lines() == []  # unsubscribed
        with pytest.raises(BleakError):
            await client.write_gatt_char(NUS_RX_UUID, b"PING\n", response=True)

    run_virtual(scenario())


def test_unknown_address_is_not_found() -> None:
    async def scenario() -> None:
        await BleakClient("24:0A:C4:FF:FF:FF", backend=SimBleakClient).connect()

    with pytest.raises(BleakDeviceNotFoundError):
        run_virtual(scenario())


def test_reboot_drops_the_connection_and_calls_back() -> None:
    async def scenario() -> tuple[list[BleakClient], BleakClient, float]:
        board = VirtualBoard()
        register_board(board, "proxy")
        dropped: list[BleakClient] = []
        gone = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_disconnect(client: BleakClient) -> None:
            dropped.append(client)
            gone.set()

        client = BleakClient(board.address, on_disconnect, backend=SimBleakClient)
        await client.connect()
        assert connection_slots(LOCAL_SOURCE)[0] == 2
        start = loop.time()
        board.reboot()
        await gone.wait()
        return dropped, client, loop.time() - start

    dropped, client, delay = run_virtual(scenario())
    assert dropped == [client]
    assert not client.is_connected
    assert delay == pytest.approx(0.72)  # the supervision timeout
    assert connection_slots(LOCAL_SOURCE)[0] == 3


def test_connection_slots_per_source() -> None:
    async def scenario() -> None:
        set_connection_slots("proxy-1", 1)
        one, two = VirtualBoard("24:0A:C4:00:00:01"), VirtualBoard("24:0A:C4:00:00:02")
        register_board(one, "proxy")
        register_board(two, "proxy")

        def device(board: VirtualBoard) -> BLEDevice:
            return BLEDevice(board.address, board.name, {"source": "proxy-1"})

        first = BleakClient(device(one), backend=SimBleakClient)
        await first.connect()
        assert connection_slots("proxy-1") == (0, 1, [one.address])
        with pytest.raises(BleakError, match="connection slot"):
            await BleakClient(device(two), backend=SimBleakClient).connect()
        # bleak-retry-connector classifies it as ESPHome's out-of-slots error.
        with pytest.raises(BleakOutOfConnectionSlotsError):
            await establish_connection(
                BleakClient, device(two), "two", backend=SimBleakClient
            )
        # Another source still has room.
        other = BleakClient(
            BLEDevice(two.address, None, {"source": "proxy-2"}), backend=SimBleakClient
        )
        await other.connect()
        await other.disconnect()
        await first.disconnect()
        assert connection_slots("proxy-1") == (1, 1, [])
        second = await establish_connection(
            BleakClient, device(two), "two", backend=SimBleakClient
        )
        assert second.is_connected
        await second.disconnect()

    run_virtual(scenario())


def test_a_connected_board_does_not_advertise() -> None:
    async def scenario() -> None:
        board = VirtualBoard()
        register_board(board, "fast")
        client = BleakClient(board.address, backend=SimBleakClient)
        await client.connect()
        assert not board.connectable
        with pytest.raises(BleakDeviceNotFoundError):
            await BleakClient(board.address, backend=SimBleakClient).connect()
        await client.disconnect()
        await asyncio.sleep(0.01)
        assert board.connectable

    run_virtual(scenario())
