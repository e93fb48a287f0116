"""The virtual ESPHome proxy, spoken to by a real aioesphomeapi APIClient."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import pytest
from aioesphomeapi import APIClient, BluetoothProxyFeature
from aioesphomeapi.core import BluetoothGATTAPIError
from bluetooth_data_tools import parse_advertisement_data_bytes
from esp32_ota_sim.esphome_proxy import VirtualProxy, make_boards
from esp32_ota_sim.esphome_proxy.framing import (
    FrameDecoder,
    FramingError,
    decode_message,
    encode_frame,
    pb,
)
from esp32_ota_sim.esphome_proxy.gatt import CCCD_HANDLE, RX_HANDLE, TX_HANDLE
from esp32_ota_sim.esphome_proxy.server import (
    CONN_CANCEL,
    CONN_TERMINATE_PEER_USER,
    GATT_INVALID_HANDLE,
    GATT_READ_NOT_PERMIT,
    NOT_CONNECTED,
    mac_to_int,
)
from esp32_ota_sim.link import PROFILES

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Coroutine

    from esp32_ota_sim.board import VirtualBoard

FLAGS = BluetoothProxyFeature.ACTIVE_CONNECTIONS | BluetoothProxyFeature.REMOTE_CACHING


class Recorder:
    """Collects callback values; `wait_for` waits until a predicate holds."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def add(self, *values: Any) -> None:
        self.items.append(values[0] if len(values) == 1 else values)
        self._changed.set()

    async def wait_for(self, predicate: Callable[[list[Any]], bool]) -> None:
        while not predicate(self.items):
            self._changed.clear()
            await self._changed.wait()


async def _client(
    proxy: VirtualProxy,
    on_stop: Callable[[bool], Coroutine[Any, Any, None]] | None = None,
) -> APIClient:
    client = APIClient("127.0.0.1", proxy.port, None, client_info="protocol test")
    await client.connect(on_stop, login=True)
    return client


@pytest.fixture(autouse=True)
def _local_sockets(socket_enabled: None) -> None:
    """The proxy is a real TCP server on 127.0.0.1."""


@pytest.fixture
async def boards() -> AsyncIterator[list[VirtualBoard]]:
    made = make_boards("v2,v1")
    yield made
    for board in made:
        board.stop()


@pytest.fixture
async def proxy(boards: list[VirtualBoard]) -> AsyncIterator[VirtualProxy]:
    server = VirtualProxy(boards, profile="fast", advertise_interval=0.05)
    await server.start()
    yield server
    await server.stop()


@pytest.fixture
async def client(proxy: VirtualProxy) -> AsyncIterator[APIClient]:
    api = await _client(proxy)
    yield api
    await api.disconnect()


async def _connect(
    client: APIClient, board: VirtualBoard, states: Recorder | None = None
) -> Recorder:
    states = states or Recorder()
    await client.bluetooth_device_connect(
        mac_to_int(board.address), states.add, feature_flags=FLAGS, address_type=0
    )
    return states


async def _enable_notify(client: APIClient, board: VirtualBoard) -> Recorder:
    lines = Recorder()
    address = mac_to_int(board.address)
    await client.bluetooth_gatt_start_notify(
        address, TX_HANDLE, lambda _h, data: lines.add(bytes(data))
    )
    await client.bluetooth_gatt_write_descriptor(address, CCCD_HANDLE, b"\x01\x00")
    return lines


async def _connect_listening(client: APIClient, board: VirtualBoard) -> Recorder:
    """Connect to `board` and subscribe to its TX; the lines it notifies."""
    await _connect(client, board)
    return await _enable_notify(client, board)


async def test_device_info(client: APIClient) -> None:
    info = await client.device_info()
    assert info.name == "virtual-proxy"
    assert info.bluetooth_mac_address == "02:E5:00:00:60:55"
    assert not info.uses_password
    assert client.api_version is not None
    flags = info.bluetooth_proxy_feature_flags_compat(client.api_version)
    for feature in (
        BluetoothProxyFeature.PASSIVE_SCAN,
        BluetoothProxyFeature.ACTIVE_CONNECTIONS,
        BluetoothProxyFeature.REMOTE_CACHING,
        BluetoothProxyFeature.CACHE_CLEARING,
        BluetoothProxyFeature.RAW_ADVERTISEMENTS,
    ):
        assert flags & feature
    assert not flags & BluetoothProxyFeature.PAIRING
    entities, services = await client.list_entities_services()
    assert (entities, services) == ([], [])


async def test_ping_is_answered(client: APIClient) -> None:
    # aioesphomeapi's keep-alive: a PingRequest the proxy must answer.
    pongs = Recorder()
    connection = client._get_connection()
    connection.add_message_callback(pongs.add, (pb.PingResponse,))
    connection.send_message(pb.PingRequest())
    await pongs.wait_for(lambda items: len(items) == 1)


async def test_raw_advertisements_are_the_boards_payloads(
    client: APIClient, boards: list[VirtualBoard]
) -> None:
    reports = Recorder()
    unsubscribe = client.subscribe_bluetooth_le_raw_advertisements(reports.add)
    await reports.wait_for(lambda items: len(items) >= 2)
    unsubscribe()
    seen = {adv.address: adv for adv in reports.items[0].advertisements}
    assert set(seen) == {mac_to_int(board.address) for board in boards}
    for board in boards:
        adv = seen[mac_to_int(board.address)]
        assert adv.address_type == 0
        assert adv.data == board.advertising_payload + board.scan_response_payload
        name, uuids, _, manufacturer, _ = parse_advertisement_data_bytes(adv.data)
        assert name == board.name
        assert "6e400001-b5a3-f393-e0a9-e50e24dcca9e" in uuids
        assert manufacturer == {}


async def test_connect_services_notify_and_write(
    client: APIClient, proxy: VirtualProxy, boards: list[VirtualBoard]
) -> None:
    board = boards[0]
    address = mac_to_int(board.address)
    slots = Recorder()
    client.subscribe_bluetooth_connections_free(slots.add)
    await slots.wait_for(lambda items: items == [(3, 3, [])])

    states = await _connect(client, board)
    assert states.items == [(True, PROFILES["fast"].mtu, 0)]
    await slots.wait_for(lambda items: items[-1] == (2, 3, [address]))
    assert not board.connectable  # the board stopped advertising

    services = await client.bluetooth_gatt_get_services(address)
    [service] = services.services
    assert service.uuid == "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
    chars = {char.uuid: char for char in service.characteristics}
    tx = chars["6e400003-b5a3-f393-e0a9-e50e24dcca9e"]
    rx = chars["6e400002-b5a3-f393-e0a9-e50e24dcca9e"]
    assert tx.handle == TX_HANDLE
    assert rx.handle == RX_HANDLE
    assert [(d.uuid, d.handle) for d in tx.descriptors] == [
        ("00002902-0000-1000-8000-00805f9b34fb", CCCD_HANDLE)
    ]
    assert tx.properties & 0x10  # notify
    assert rx.properties & 0x04  # write without response
    assert rx.properties & 0x08  # write

    lines = await _enable_notify(client, board)
    cccd = await client.bluetooth_gatt_read_descriptor(address, CCCD_HANDLE)
    assert cccd == b"\x01\x00"

    await client.bluetooth_gatt_write(address, RX_HANDLE, b"PING\n", True)
    await lines.wait_for(lambda items: b"PONG\n" in items)
    await client.bluetooth_gatt_write(address, RX_HANDLE, b"OTA:HELLO\n", False)
    await lines.wait_for(lambda items: b"".join(items).count(b"\n") >= 2)
    hello = b"".join(lines.items).split(b"\n")[1]
    assert hello.startswith(b'OTA:HELLO:{"proto":2')

    await client.bluetooth_device_disconnect(address)
    assert states.items[-1] == (False, 0, 0)
    await slots.wait_for(lambda items: items[-1] == (3, 3, []))
    assert board.connectable  # advertising again
    assert proxy.allocated == []


async def test_notifications_only_after_notify_request(
    client: APIClient, boards: list[VirtualBoard]
) -> None:
    board = boards[0]
    address = mac_to_int(board.address)
    await _connect(client, board)
    quiet = Recorder()
    client._get_connection().add_message_callback(  # every notification sent
        quiet.add, (pb.BluetoothGATTNotifyDataResponse,)
    )
    await client.bluetooth_gatt_write(address, RX_HANDLE, b"PING\n", True)
    lines = await _enable_notify(client, board)
    await client.bluetooth_gatt_write(address, RX_HANDLE, b"PING\n", True)
    await lines.wait_for(lambda items: items == [b"PONG\n"])
    assert len(quiet.items) == 1  # the first PONG went nowhere
    await client.bluetooth_device_disconnect(address)


async def test_tx_read_and_gatt_errors(
    client: APIClient, boards: list[VirtualBoard]
) -> None:
    board = boards[0]
    address = mac_to_int(board.address)
    with pytest.raises(BluetoothGATTAPIError) as not_connected:
        await client.bluetooth_gatt_get_services(address)
    assert not_connected.value.error.error == NOT_CONNECTED

    lines = await _connect_listening(client, board)
    await client.bluetooth_gatt_write(address, RX_HANDLE, b"PING\n", True)
    await lines.wait_for(lambda items: items == [b"PONG\n"])
    # Notifications carry their own data; a read returns TX's stored value.
    assert await client.bluetooth_gatt_read(address, TX_HANDLE) == bytearray()
    board.ble.gatts_write(board.peripheral._tx, b"stored")
    assert await client.bluetooth_gatt_read(address, TX_HANDLE) == bytearray(b"stored")

    with pytest.raises(BluetoothGATTAPIError) as rx_read:
        await client.bluetooth_gatt_read(address, RX_HANDLE)
    assert rx_read.value.error.error == GATT_READ_NOT_PERMIT
    with pytest.raises(BluetoothGATTAPIError) as bad_handle:
        await client.bluetooth_gatt_write(address, 99, b"x", True)
    assert bad_handle.value.error.error == GATT_INVALID_HANDLE
    with pytest.raises(BluetoothGATTAPIError):  # longer than MTU - 3
        await client.bluetooth_gatt_write(address, RX_HANDLE, b"x" * 300, True)
    clear = await client.bluetooth_device_clear_cache(address)
    assert clear.success
    await client.bluetooth_device_disconnect(address)


async def test_writes_without_response_can_be_lost_silently(
    boards: list[VirtualBoard],
) -> None:
    lossy = replace(PROFILES["fast"], write_loss=1.0, name="all-lost")
    async with VirtualProxy(boards, profile=lossy) as proxy:
        client = await _client(proxy)
        board = boards[0]
        address = mac_to_int(board.address)
        lines = await _connect_listening(client, board)
        # Lost on the way: no error, no reply.
        await client.bluetooth_gatt_write(address, RX_HANDLE, b"PING\n", False)
        # A write with response is acknowledged, so it is never lost silently.
        await client.bluetooth_gatt_write(address, RX_HANDLE, b"VERSION\n", True)
        await lines.wait_for(lambda items: len(items) > 0)
        assert lines.items == [b"VERSION:1.0.0\n"]
        await client.bluetooth_device_disconnect(address)
        await client.disconnect()


async def test_slots_run_out(boards: list[VirtualBoard]) -> None:
    async with VirtualProxy(boards, profile="fast", slots=1) as proxy:
        client = await _client(proxy)
        slots = Recorder()
        client.subscribe_bluetooth_connections_free(slots.add)
        first = await _connect(client, boards[0])
        assert first.items == [(True, 256, 0)]
        await slots.wait_for(
            lambda items: items[-1] == (0, 1, [mac_to_int(boards[0].address)])
        )
        second = await _connect(client, boards[1])
        assert second.items == [(False, 0, CONN_CANCEL)]
        await client.bluetooth_device_disconnect(mac_to_int(boards[0].address))
        third = await _connect(client, boards[1])
        assert third.items == [(True, 256, 0)]
        await client.bluetooth_device_disconnect(mac_to_int(boards[1].address))
        await client.disconnect()


async def test_board_reboot_drops_the_connection_and_readvertises(
    client: APIClient, boards: list[VirtualBoard]
) -> None:
    board = boards[0]
    address = mac_to_int(board.address)
    slots = Recorder()
    client.subscribe_bluetooth_connections_free(slots.add)
    states = await _connect(client, board)
    board.reboot()  # what machine.reset() after an OTA apply does
    await states.wait_for(lambda items: len(items) == 2)
    assert states.items[-1] == (False, 0, CONN_TERMINATE_PEER_USER)
    await slots.wait_for(lambda items: items[-1] == (3, 3, []))
    reports = Recorder()
    client.subscribe_bluetooth_le_raw_advertisements(reports.add)
    await reports.wait_for(
        lambda items: any(a.address == address for r in items for a in r.advertisements)
    )
    again = await _connect(client, board)
    assert again.items == [(True, 256, 0)]
    await client.bluetooth_device_disconnect(address)


async def test_closing_the_api_connection_frees_its_slots(
    client: APIClient, proxy: VirtualProxy, boards: list[VirtualBoard]
) -> None:
    slots = Recorder()
    client.subscribe_bluetooth_connections_free(slots.add)
    other = await _client(proxy)
    await _connect(other, boards[0])
    await slots.wait_for(lambda items: items[-1][0] == 2)
    await other.disconnect()
    await slots.wait_for(lambda items: items[-1] == (3, 3, []))
    assert boards[0].connectable


async def test_v1_only_board_refuses_v2(
    client: APIClient, boards: list[VirtualBoard]
) -> None:
    board = boards[1]
    address = mac_to_int(board.address)
    lines = await _connect_listening(client, board)
    for line in (b"OTA:HELLO\n", b"OTA:FILE:app.py:10:0\n", b"PING\n"):
        await client.bluetooth_gatt_write(address, RX_HANDLE, line, True)
    await lines.wait_for(lambda items: len(items) == 3)
    assert lines.items == [
        b"OTA:ERR:UNKNOWN_CMD\n",
        b"OTA:ERR:UNKNOWN_CMD\n",
        b"PONG\n",
    ]
    await client.bluetooth_device_disconnect(address)
    board.reboot()  # still v1 only after a reset
    lines = await _connect_listening(client, board)
    await client.bluetooth_gatt_write(address, RX_HANDLE, b"OTA:HELLO\n", True)
    await lines.wait_for(lambda items: items == [b"OTA:ERR:UNKNOWN_CMD\n"])
    await client.bluetooth_device_disconnect(address)


async def test_proxy_stop_disconnects_clients(
    proxy: VirtualProxy, boards: list[VirtualBoard]
) -> None:
    lost = asyncio.Event()

    async def on_stop(_expected: bool) -> None:
        lost.set()

    client = await _client(proxy, on_stop)
    await _connect(client, boards[0])
    await proxy.stop()
    await lost.wait()
    assert proxy.allocated == []
    assert boards[0].connectable
    await client.disconnect()


def test_frames_split_anywhere() -> None:
    messages = [
        pb.HelloRequest(client_info="x" * 200, api_version_major=1),
        pb.PingRequest(),
        pb.BluetoothGATTWriteRequest(address=1, handle=22, data=b"\x00\xff" * 100),
    ]
    stream = b"".join(encode_frame(message) for message in messages)
    decoder = FrameDecoder()
    frames = []
    for i in range(len(stream)):
        frames += decoder.feed(stream[i : i + 1])
    decoded = [decode_message(msg_type, payload) for msg_type, payload in frames]
    assert decoded == messages


def test_noise_preamble_is_refused() -> None:
    with pytest.raises(FramingError, match="encryption"):
        FrameDecoder().feed(b"\x01\x00\x05hello")


async def test_proxy_profile_reports_its_mtu(boards: list[VirtualBoard]) -> None:
    async with VirtualProxy(boards, profile="proxy") as proxy:
        client = await _client(proxy)
        board = boards[0]
        states = await _connect(client, board)
        assert states.items == [(True, PROFILES["proxy"].mtu, 0)]  # 247, not 256
        lines = await _enable_notify(client, board)
        await client.bluetooth_gatt_write(
            mac_to_int(board.address), RX_HANDLE, b"PING\n", True
        )
        await lines.wait_for(lambda items: items == [b"PONG\n"])
        await client.bluetooth_device_disconnect(mac_to_int(board.address))
        await client.disconnect()


async def test_a_board_held_by_another_client_is_refused(
    client: APIClient, proxy: VirtualProxy, boards: list[VirtualBoard]
) -> None:
    other = await _client(proxy)
    await _connect(other, boards[0])
    refused = await _connect(client, boards[0])
    assert refused.items == [(False, 0, CONN_CANCEL)]
    with pytest.raises(BluetoothGATTAPIError):  # not this client's connection
        await client.bluetooth_gatt_write(
            mac_to_int(boards[0].address), RX_HANDLE, b"PING\n", True
        )
    await other.disconnect()
