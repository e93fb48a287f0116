"""The board's GATT table as the proxy reports it (BluetoothGATTGetServices).

Same layout and handles as the simulator's bleak backend: the NUS service,
TX (read, notify) with its CCCD, RX (write, write without response).
"""

from __future__ import annotations

from uuid import UUID

from esp32_ota_sim.bleak_backend import (  # one source of truth for the layout
    _RX_HANDLE,
    _SERVICE_HANDLE,
    _TX_CCCD_HANDLE,
    _TX_HANDLE,
    CCCD_UUID,
    NUS_RX_UUID,
    NUS_SERVICE_UUID,
    NUS_TX_UUID,
)

from .framing import Message, pb

__all__ = [
    "CCCD_HANDLE",
    "RX_HANDLE",
    "SERVICE_HANDLE",
    "TX_HANDLE",
    "services_message",
]

SERVICE_HANDLE = _SERVICE_HANDLE
TX_HANDLE = _TX_HANDLE
CCCD_HANDLE = _TX_CCCD_HANDLE
RX_HANDLE = _RX_HANDLE

# ESP-IDF characteristic property bits (esp_gatt_char_prop_t).
PROP_READ = 0x02
PROP_WRITE_NR = 0x04
PROP_WRITE = 0x08
PROP_NOTIFY = 0x10


def _split(uuid: str) -> list[int]:
    """A 128-bit UUID as ESPHome sends it: [high 64 bits, low 64 bits]."""
    value = UUID(uuid).int
    return [value >> 64, value & 0xFFFFFFFFFFFFFFFF]


def services_message(address: int) -> Message:
    """The whole NUS table in one response."""
    cccd = pb.BluetoothGATTDescriptor(uuid=_split(CCCD_UUID), handle=CCCD_HANDLE)
    tx = pb.BluetoothGATTCharacteristic(
        uuid=_split(NUS_TX_UUID),
        handle=TX_HANDLE,
        properties=PROP_READ | PROP_NOTIFY,
        descriptors=[cccd],
    )
    rx = pb.BluetoothGATTCharacteristic(
        uuid=_split(NUS_RX_UUID),
        handle=RX_HANDLE,
        properties=PROP_WRITE | PROP_WRITE_NR,
    )
    service = pb.BluetoothGATTService(
        uuid=_split(NUS_SERVICE_UUID), handle=SERVICE_HANDLE, characteristics=[tx, rx]
    )
    response: Message = pb.BluetoothGATTGetServicesResponse(
        address=address, services=[service]
    )
    return response
