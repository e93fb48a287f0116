"""Diagnostic sensors of a board: signal, free flash, the last update.

Signal strength is disabled by default, as in Home Assistant's own
Bluetooth integrations (it changes with every advertisement); the others
change only when the board is read or installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from homeassistant.components import bluetooth
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
    EntityCategory,
    UnitOfInformation,
)
from homeassistant.util import dt as dt_util

from .entity import BoardEntity
from .history import RESULT_FAILED, RESULT_INSTALLED, RESULT_UNCHANGED

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from homeassistant.core import HomeAssistant
    from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
    from homeassistant.helpers.typing import StateType

    from .coordinator import BoardCoordinator
    from .data import Esp32OtaConfigEntry
    from .history import TransferRecord

# Read-only entities: nothing to serialise.
PARALLEL_UPDATES = 0


def _rssi(board: BoardCoordinator) -> int | None:
    info = bluetooth.async_last_service_info(
        board.hass, board.address, connectable=False
    )
    return info.rssi if info is not None else None


def _free(board: BoardCoordinator) -> int | None:
    info = board.data.board_info
    return info.free if info is not None else None


def _last(board: BoardCoordinator) -> TransferRecord | None:
    history = board.installer.history
    return history[-1] if history else None


def _result(board: BoardCoordinator) -> str | None:
    return record.result if (record := _last(board)) else None


def _ended(board: BoardCoordinator) -> datetime | None:
    """When the last install ended: its start, queueing and run time."""
    if (record := _last(board)) is None:
        return None
    if (started := dt_util.parse_datetime(record.started)) is None:
        return None
    return started + timedelta(seconds=record.queued_seconds + record.seconds)


def _path(board: BoardCoordinator) -> str | None:
    return record.connection if (record := _last(board)) else None


@dataclass(frozen=True, kw_only=True)
class BoardSensorDescription(SensorEntityDescription):
    """A diagnostic sensor: how to read it, and whether it needs the board."""

    value_fn: Callable[[BoardCoordinator], StateType | datetime]
    needs_board: bool = False  # unavailable while no scanner hears the board


SENSORS: tuple[BoardSensorDescription, ...] = (
    BoardSensorDescription(
        key="rssi",
        device_class=SensorDeviceClass.SIGNAL_STRENGTH,
        native_unit_of_measurement=SIGNAL_STRENGTH_DECIBELS_MILLIWATT,
        state_class=SensorStateClass.MEASUREMENT,
        entity_registry_enabled_default=False,
        value_fn=_rssi,
        needs_board=True,
    ),
    BoardSensorDescription(
        key="free_flash",
        translation_key="free_flash",
        device_class=SensorDeviceClass.DATA_SIZE,
        native_unit_of_measurement=UnitOfInformation.BYTES,
        suggested_unit_of_measurement=UnitOfInformation.KIBIBYTES,
        suggested_display_precision=0,
        value_fn=_free,
        needs_board=True,
    ),
    BoardSensorDescription(
        key="last_update_result",
        translation_key="last_update_result",
        device_class=SensorDeviceClass.ENUM,
        options=[RESULT_INSTALLED, RESULT_UNCHANGED, RESULT_FAILED],
        value_fn=_result,
    ),
    BoardSensorDescription(
        key="last_update",
        translation_key="last_update",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=_ended,
    ),
    BoardSensorDescription(
        key="last_update_connection",
        translation_key="last_update_connection",
        value_fn=_path,
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: Esp32OtaConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the diagnostic sensors of one board."""
    async_add_entities(
        BoardSensor(entry.runtime_data, description) for description in SENSORS
    )


class BoardSensor(BoardEntity, SensorEntity):
    """One diagnostic value of a board."""

    _attr_entity_category = EntityCategory.DIAGNOSTIC
    entity_description: BoardSensorDescription

    def __init__(
        self, coordinator: BoardCoordinator, description: BoardSensorDescription
    ) -> None:
        """Describe one value of the board."""
        super().__init__(coordinator, description.key)
        self.entity_description = description

    @property
    def available(self) -> bool:
        """Board values while it is in range; the last update's always."""
        return self.coordinator.available or not self.entity_description.needs_board

    @property
    def native_value(self) -> StateType | datetime:
        """Read the value from the coordinator (or the Bluetooth stack)."""
        return self.entity_description.value_fn(self.coordinator)
