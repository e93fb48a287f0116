"""The BLE link model, timed on the virtual clock (exact and repeatable)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
from esp32_ota_sim.clock import run_virtual
from esp32_ota_sim.link import (
    PROFILES,
    LinkClosedError,
    LinkError,
    LinkProfile,
    SimLink,
    get_profile,
)


class Peer:
    """A board side that records what reaches it and when."""

    address = "24:0A:C4:00:00:99"

    def __init__(self) -> None:
        self.connectable = True
        self.received: list[tuple[float, bytes]] = []
        self.disconnects: list[int | None] = []
        self.links: list[SimLink] = []

    def accept(self, link: SimLink) -> int:
        self.links.append(link)
        return len(self.links)

    def receive(self, link: SimLink, data: bytes) -> None:
        self.received.append((link.loop.time(), data))

    def central_disconnected(self, link: SimLink, conn: int | None) -> None:
        self.disconnects.append(conn)


def _times(events: list[tuple[float, bytes]], start: float) -> list[float]:
    return [round((t - start) * 1000, 6) for t, _ in events]


def _pace(profile: LinkProfile) -> tuple[int, float, int, float]:
    """MTU, connection interval, packets per event, latency."""
    return (
        profile.mtu,
        profile.interval_ms,
        profile.packets_per_event,
        profile.latency_ms,
    )


def test_profiles() -> None:
    proxy = PROFILES["proxy"]
    assert _pace(proxy) == (247, 30.0, 4, 10.0)
    local = PROFILES["local"]
    assert _pace(local) == (256, 15.0, 6, 0.0)
    lossy = PROFILES["lossy-proxy"]
    assert (lossy.latency_ms, lossy.write_loss, lossy.mtu) == (15.0, 0.02, 247)
    wifi = PROFILES["wifi-proxy"]
    assert (wifi.latency_ms, wifi.jitter_ms, wifi.write_loss, wifi.notify_loss) == (
        10.0,
        5.0,
        0.01,
        0.005,
    )
    assert wifi.spike_ms >= 100
    quiet = replace(wifi, jitter_ms=0, spike_rate=0, spike_ms=0, write_loss=0)
    assert replace(quiet, notify_loss=0, name="proxy") == proxy
    assert PROFILES["fast"].interval_ms < 5
    assert proxy.payload == 244
    assert get_profile("local") is local
    with pytest.raises(LinkError):
        get_profile("carrier-pigeon")


def test_connect_takes_time_and_sets_the_mtu() -> None:
    async def scenario() -> tuple[float, int, int | None]:
        peer = Peer()
        link = SimLink(
            peer, replace(PROFILES["proxy"], connect_ms=None, connect_spread_ms=0)
        )
        start = asyncio.get_running_loop().time()
        await link.open()
        return asyncio.get_running_loop().time() - start, link.mtu, link.conn_handle

    elapsed, mtu, conn = run_virtual(scenario())
    assert elapsed == pytest.approx(0.14)  # 2 x 10 ms hop + 4 x 30 ms events
    assert mtu == 247
    assert conn == 1


def _connect_seconds(profile: LinkProfile) -> float:
    async def scenario() -> float:
        link = SimLink(Peer(), profile)
        start = asyncio.get_running_loop().time()
        await link.open()
        return asyncio.get_running_loop().time() - start

    return run_virtual(scenario())


@pytest.mark.parametrize("name", ["proxy", "wifi-proxy", "lossy-proxy"])
def test_connecting_through_a_proxy_takes_1_to_3_seconds(name: str) -> None:
    times = [_connect_seconds(replace(PROFILES[name], seed=n)) for n in range(20)]
    assert all(1.0 <= t <= 3.0 for t in times), times
    assert max(times) - min(times) > 1.0  # spread over the range, seeded
    assert _connect_seconds(PROFILES[name]) == _connect_seconds(PROFILES[name])


def test_unreachable_peer_fails_to_connect() -> None:
    async def scenario() -> None:
        peer = Peer()
        peer.connectable = False
        await SimLink(peer, "fast").open()

    with pytest.raises(LinkError):
        run_virtual(scenario())


def test_each_event_carries_at_most_packets_per_event() -> None:
    async def scenario() -> tuple[Peer, float]:
        peer = Peer()
        link = SimLink(peer, "proxy")
        await link.open()
        start = link.loop.time()
        for n in range(10):
            link.write_without_response(b"%d" % n)
        await asyncio.sleep(0.2)
        return peer, start

    peer, start = run_virtual(scenario())
    # 10 ms to the proxy, then events on the 30 ms grid, 4 writes per event.
    assert _times(peer.received, start) == [30.0] * 4 + [60.0] * 4 + [90.0] * 2
    assert [data for _, data in peer.received] == [b"%d" % n for n in range(10)]


def test_write_with_response_waits_for_the_round_trip() -> None:
    async def scenario() -> tuple[float, list[tuple[float, bytes]], float]:
        peer = Peer()
        link = SimLink(peer, "proxy")
        await link.open()
        start = link.loop.time()
        await link.write_with_response(b"x")
        return link.loop.time() - start, peer.received, start

    elapsed, received, start = run_virtual(scenario())
    assert _times(received, start) == [30.0]  # delivered at the first event
    assert elapsed == pytest.approx(0.07)  # + response in the next event + hop


def test_oversized_writes_raise() -> None:
    async def scenario() -> None:
        link = SimLink(Peer(), "proxy")
        await link.open()
        link.write_without_response(b"x" * 244)
        with pytest.raises(LinkError):
            link.write_without_response(b"x" * 245)
        with pytest.raises(LinkError):
            await link.write_with_response(b"x" * 245)

    run_virtual(scenario())


def _lost_writes(profile: LinkProfile, count: int) -> list[int]:
    async def scenario() -> list[int]:
        peer = Peer()
        link = SimLink(peer, profile)
        await link.open()
        for n in range(count):
            link.write_without_response(b"%d" % n)
            if n % 4 == 3:
                await asyncio.sleep(profile.interval_ms / 1000)
        await asyncio.sleep(1)
        got = {int(data) for _, data in peer.received}
        assert link.stats.writes == count
        assert link.stats.writes_lost == count - len(got)
        return [n for n in range(count) if n not in got]

    return run_virtual(scenario())


def test_write_loss_is_seeded_and_repeatable() -> None:
    lossy = PROFILES["lossy-proxy"]
    first = _lost_writes(lossy, 2000)
    assert first == _lost_writes(lossy, 2000)
    assert 10 <= len(first) <= 80  # 2 % of 2000, give or take
    other_seed = _lost_writes(replace(lossy, seed=7), 2000)
    assert other_seed != first
    assert _lost_writes(PROFILES["proxy"], 200) == []


def test_full_proxy_queue_drops_silently() -> None:
    async def scenario() -> tuple[int, int, int]:
        peer = Peer()
        link = SimLink(peer, "proxy")
        await link.open()
        for n in range(100):
            link.write_without_response(b"%d" % n)
        await asyncio.sleep(2)
        return len(peer.received), link.stats.writes_dropped, link.stats.max_queue

    delivered, dropped, max_queue = run_virtual(scenario())
    assert (delivered, dropped, max_queue) == (32, 68, 32)


def test_notifications_ride_events_and_the_hop_back() -> None:
    async def scenario() -> tuple[list[tuple[float, bytes]], float, int]:
        peer = Peer()
        got: list[tuple[float, bytes]] = []
        loop = asyncio.get_running_loop()
        link = SimLink(
            peer, "proxy", on_notify=lambda data: got.append((loop.time(), data))
        )
        await link.open()
        await asyncio.sleep(0.005)
        start = link.loop.time() - 0.005
        for n in range(6):
            link.board_notify(b"n%d" % n)
        await asyncio.sleep(0.2)
        return got, start, link.stats.bytes_down

    got, start, bytes_down = run_virtual(scenario())
    assert _times(got, start) == [40.0] * 4 + [70.0] * 2
    assert bytes_down == 12


def test_notify_loss() -> None:
    async def scenario() -> tuple[int, int]:
        profile = replace(PROFILES["fast"], notify_loss=0.5, seed=3)
        got: list[bytes] = []
        link = SimLink(Peer(), profile, on_notify=got.append)
        await link.open()
        for n in range(200):
            link.board_notify(b"%d" % n)
        await asyncio.sleep(1)
        return len(got), link.stats.notifications_lost

    delivered, lost = run_virtual(scenario())
    assert delivered + lost == 200
    assert 60 < lost < 140


def test_board_reset_is_noticed_after_supervision_timeout() -> None:
    async def scenario() -> tuple[float, SimLink, BaseException | None]:
        peer = Peer()
        loop = asyncio.get_running_loop()
        noticed: list[float] = []
        link = SimLink(peer, "proxy", on_disconnect=lambda: noticed.append(loop.time()))
        await link.open()
        pending = asyncio.ensure_future(link.write_with_response(b"x"))
        await asyncio.sleep(0)
        start = loop.time()
        link.board_dropped(reset=True)
        error: BaseException | None = None
        try:
            await pending
        except LinkClosedError as err:
            error = err
        await asyncio.sleep(1)
        assert noticed
        return noticed[0] - start, link, error

    delay, link, error = run_virtual(scenario())
    assert delay == pytest.approx(0.72)
    assert isinstance(error, LinkClosedError)
    assert not link.connected
    with pytest.raises(LinkClosedError):
        link.write_without_response(b"late")


def test_central_close_tells_the_board() -> None:
    async def scenario() -> tuple[Peer, SimLink]:
        peer = Peer()
        calls: list[int] = []
        link = SimLink(peer, "local", on_disconnect=lambda: calls.append(1))
        await link.open()
        await link.close()
        await link.close()  # harmless
        assert calls == []  # no callback for a disconnect we asked for
        return peer, link

    peer, link = run_virtual(scenario())
    assert peer.disconnects == [1]
    assert not link.connected


def test_a_link_connects_once() -> None:
    async def scenario() -> None:
        link = SimLink(Peer(), "fast")
        await link.open()
        await link.close()
        await link.open()

    with pytest.raises(LinkError):
        run_virtual(scenario())


def _paced_writes(profile: LinkProfile, count: int) -> tuple[list[float], SimLink]:
    """Send `count` writes, one per event's worth; their hop times, in order."""

    async def scenario() -> tuple[list[float], SimLink]:
        peer = Peer()
        link = SimLink(peer, profile)
        await link.open()
        sent: dict[bytes, float] = {}
        for n in range(count):
            data = b"%d" % n
            sent[data] = link.loop.time()
            link.write_without_response(data)
            await asyncio.sleep(profile.interval_ms / 1000 / profile.packets_per_event)
        await asyncio.sleep(2)
        order = [int(data) for _, data in peer.received]
        assert order == sorted(order)  # jitter never reorders
        return [t - sent[data] for t, data in peer.received], link

    return run_virtual(scenario())


def test_the_wifi_hop_jitters_and_spikes_but_never_reorders() -> None:
    wifi = replace(PROFILES["wifi-proxy"], write_loss=0.0)
    delays, link = _paced_writes(wifi, 3000)
    assert len(delays) == 3000
    assert link.stats.spikes > 0
    assert link.stats.max_hop_ms >= 100  # spikes of 100 ms and more
    assert max(delays) >= 0.1
    # Several ms of jitter on top of the 30 ms event grid: the hop alone varies.
    steady, steady_link = _paced_writes(PROFILES["proxy"], 300)
    assert steady_link.stats.max_hop_ms == 10.0
    assert steady_link.stats.spikes == 0
    assert len({round(d, 4) for d in delays}) > len({round(d, 4) for d in steady})


def test_a_lost_write_uses_its_place_in_the_event() -> None:
    async def scenario() -> tuple[list[tuple[float, bytes]], float, int]:
        peer = Peer()
        profile = replace(PROFILES["proxy"], write_loss=0.5, seed=5)
        link = SimLink(peer, profile)
        await link.open()
        start = link.loop.time()
        for n in range(8):
            link.write_without_response(b"%d" % n)
        await asyncio.sleep(0.5)
        return peer.received, start, link.stats.writes_lost

    received, start, lost = run_virtual(scenario())
    assert 0 < lost < 8
    # writes 0-3 went out in the first event whether lost or not: 4-7 never
    # move up into it.
    for t, data in received:
        assert round((t - start) * 1000) == (30 if int(data) < 4 else 60)


def test_a_full_notification_queue_drops_them() -> None:
    async def scenario() -> tuple[int, int]:
        got: list[bytes] = []
        link = SimLink(Peer(), "proxy", on_notify=got.append)
        await link.open()
        for n in range(40):
            link.board_notify(b"%d" % n)
        await asyncio.sleep(1)
        assert got == [b"%d" % n for n in range(16)]
        return len(got), link.stats.notifications_dropped

    assert run_virtual(scenario()) == (16, 24)
