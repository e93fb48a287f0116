"""A board in the middle of its update gets the next free slot first.

While a new version runs on trial the installer looks at the board now and
then, each look a short connection; it must not queue behind boards whose
updates have not started (their whole transfers would come first).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from custom_components.esp32_ota.fleet import FleetScheduler
from tests.common import board_address, setup_fleet

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from tests.bluetooth_helpers import SimProxyScanner


async def test_a_board_asking_first_is_admitted_before_earlier_waiters(
    hass: HomeAssistant, proxy: SimProxyScanner
) -> None:
    await setup_fleet(hass, proxy, 3, slots=1)
    fleet = FleetScheduler(hass)
    admitted: list[str] = []

    async def use(address: str, *, first: bool) -> None:
        async with fleet.slot(address, first=first):
            admitted.append(address)

    waiting, resuming = board_address(2), board_address(3)
    async with fleet.slot(board_address(1)):  # holds the only slot
        later = hass.async_create_task(use(waiting, first=False))
        await asyncio.sleep(0)
        ahead = hass.async_create_task(use(resuming, first=True))
        await asyncio.sleep(0)
        assert fleet.queued() == [waiting, resuming]
    await asyncio.gather(later, ahead)
    assert admitted == [resuming, waiting]
