"""The transfer benchmark (scripts/bench, esp32_ota_sim.bench).

Small sizes and one profile: the code path runs end to end and its figures
agree with each other. Simulated seconds are deterministic, so comparing
them is a statement about behaviour, not about the machine's speed; CPU
figures are only checked for being sane, never against a limit.
"""

from __future__ import annotations

import ast
import gc
import json
import math
import re
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from esp32_ota_sim.bench import (
    MODES,
    BenchResult,
    CaseResult,
    CpuMeter,
    measure_heap,
    raw_capacity,
    render_markdown,
    render_table,
    run_bench,
    run_case,
)
from esp32_ota_sim.content import FROZEN_SOURCE, source_bytes
from esp32_ota_sim.link import PROFILES
from esp32_ota_sim.speed import ESP32

ROOT = Path(__file__).resolve().parents[1]
KIB = 1024


def _board_window() -> int:
    """OTAManager.WINDOW as device_firmware/ota_manager.py sets it."""
    source = (ROOT / "device_firmware" / "ota_manager.py").read_text()
    match = re.search(r"^    WINDOW = (\d+)$", source, re.MULTILINE)
    if match is None:
        raise AssertionError("WINDOW not found in ota_manager.py")
    return int(match.group(1))


BOARD_WINDOW = _board_window()


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Override the HA-wide autouse fixture: the benchmark needs no hass."""


@pytest.fixture(scope="module")
def proxy_cases() -> dict[str, CaseResult]:
    """4 KB over the proxy profile in every mode (run once for the module)."""
    return {key: run_case("proxy", 4 * KIB, key) for key in MODES}


def test_profiles_are_the_ones_the_benchmark_describes() -> None:
    proxy, local, lossy = PROFILES["proxy"], PROFILES["local"], PROFILES["lossy-proxy"]
    assert (proxy.mtu, proxy.interval_ms, proxy.packets_per_event) == (247, 30.0, 4)
    assert (proxy.latency_ms, proxy.write_loss) == (10.0, 0.0)
    assert (local.mtu, local.interval_ms, local.packets_per_event) == (256, 15.0, 6)
    assert (local.latency_ms, local.write_loss) == (0.0, 0.0)
    assert replace(lossy, latency_ms=10.0, write_loss=0.0, name="proxy") == proxy
    assert lossy.latency_ms == 15.0
    assert lossy.write_loss == 0.02
    for profile in (proxy, local, lossy):  # the board's own speed
        assert profile.board_speed is None
    assert (ESP32.line_cost_ms, ESP32.byte_cost_us) == (1.5, 2.0)
    # packets per event x (MTU - 3) per interval
    assert raw_capacity(proxy) == pytest.approx(4 * 244 / 0.030)
    assert raw_capacity(local) == pytest.approx(6 * 253 / 0.015)


def test_every_mode_delivers_the_file(proxy_cases: dict[str, CaseResult]) -> None:
    for key, case in proxy_cases.items():
        assert case.mode == key
        assert case.bytes_delivered == case.size == 4 * KIB
        assert case.seconds > 0
        assert case.kib_s == pytest.approx(case.size / KIB / case.seconds)
        assert case.raw_capacity == pytest.approx(raw_capacity(PROFILES["proxy"]))
        assert case.efficiency == pytest.approx(
            case.size / case.seconds / case.raw_capacity
        )
        assert 0 < case.efficiency <= 1
        # no loss on this profile: nothing sent twice, no timer fired
        assert case.writes_lost == case.writes_dropped == case.resent == 0
        assert case.timeouts == 0


def test_the_protocols_use_the_link_as_expected(
    proxy_cases: dict[str, CaseResult],
) -> None:
    saw, best, v2 = proxy_cases["v1-saw"], proxy_cases["v1-best"], proxy_cases["v2"]
    v1_window = MODES["v1-best"].v1_window
    assert (saw.window, best.window, v2.window) == (1, v1_window, BOARD_WINDOW)
    # hex carries half a byte per character, base64 three quarters
    assert saw.chunk == best.chunk < v2.chunk
    assert v2.chunk * 4 / 3 < PROFILES["proxy"].payload
    # a data line is one write: the v1 modes write the same lines
    assert saw.writes == best.writes > v2.writes
    assert v2.seconds < best.seconds < saw.seconds
    assert saw.seconds > 2 * best.seconds


def test_cpu_figures_are_measured(proxy_cases: dict[str, CaseResult]) -> None:
    for case in proxy_cases.values():
        assert case.cpu_client > 0
        assert case.cpu_firmware > 0
        assert case.cpu_link > 0
        assert case.cpu_total > 0
        assert case.client_cpu_s_per_mib == pytest.approx(
            case.cpu_client / (case.size / (KIB * KIB))
        )


def test_cpu_meter_counts_nested_regions_once() -> None:
    now = [0.0]

    def clock() -> float:
        return now[0]

    meter = CpuMeter(clock=clock, cpu_clock=clock)

    def firmware() -> None:
        now[0] += 2.0

    def client() -> str:
        now[0] += 1.0
        meter.wrap("firmware", firmware)()
        now[0] += 0.5
        return "done"

    meter.start()
    assert meter.wrap("client", client)() == "done"
    now[0] += 0.25  # outside every region: the event loop
    meter.stop()
    assert meter.seconds == {"client": 1.5, "firmware": 2.0, "link": 0.0}
    assert meter.total == 3.75
    assert meter.loop == 0.25


def test_cpu_meter_takes_its_own_cost_out_and_holds_the_collector() -> None:
    now = [0.0]

    def clock() -> float:  # every read of the clock costs a second
        now[0] += 1.0
        return now[0]

    meter = CpuMeter(clock=clock, cpu_clock=clock)
    # an empty region costs one read, and adds one to a region around it
    assert meter.calibrate(calls=10, rounds=2) == (1.0, 1.0)

    def firmware() -> None:
        now[0] += 2.0

    def client() -> None:
        now[0] += 5.0
        meter.wrap("firmware", firmware)()

    assert gc.isenabled()
    meter.start()
    assert not gc.isenabled()  # a collection would land in any region
    meter.wrap("client", client)()
    meter.stop()
    assert gc.isenabled()
    assert meter.seconds["client"] == 7.0  # 5 of work and the meter's 2
    assert (meter.net("client"), meter.net("firmware")) == (5.0, 2.0)
    assert meter.client == 5.0


def test_lossy_link_recovers_quickly_and_repeats_exactly() -> None:
    case = run_case("lossy-proxy", 16 * KIB, "v2", seed=3, repeats=2)
    assert case.bytes_delivered == 16 * KIB
    assert case.writes_lost > 0
    assert case.resent >= case.writes_lost
    # a loss costs a few connection intervals, never a control timeout
    assert case.max_stall < 10 * PROFILES["lossy-proxy"].interval_ms / 1000
    again = run_case("lossy-proxy", 16 * KIB, "v2", seed=3)
    assert (again.seconds, again.writes_lost) == (case.seconds, case.writes_lost)


def test_a_smaller_board_window_is_slower() -> None:
    small = run_case("proxy", 16 * KIB, "v2", firmware={"WINDOW": 2})
    normal = run_case("proxy", 16 * KIB, "v2")
    assert small.window == 2
    assert normal.window == BOARD_WINDOW
    assert small.seconds > normal.seconds


def test_a_board_window_beyond_the_proxy_queue_loses_nothing() -> None:
    # a board offering 48 frames: 48 in flight would overflow the proxy's
    # queue of 32 and every dropped write is sent again
    big = run_case("proxy", 32 * KIB, "v2-bin", firmware={"FRAME_WINDOW": 48})
    normal = run_case("proxy", 32 * KIB, "v2-bin", firmware={"FRAME_WINDOW": 12})
    assert big.writes_dropped == 0
    assert big.resent == 0
    assert big.seconds <= normal.seconds * 1.02


def test_a_proxy_with_half_the_assumed_queue_still_loses_nothing() -> None:
    # The cap of 32 is the simulator's queue, not a measured ESPHome figure.
    # Behind a jittery Wi-Fi proxy that holds only 16 writes, the window the
    # client sizes from the link (not the cap) keeps a 48-frame board from
    # overflowing it; the cap alone would keep 32 in flight.
    small_queue = replace(PROFILES["wifi-proxy"], queue_limit=16)
    big = run_case(small_queue, 32 * KIB, "v2-bin", firmware={"FRAME_WINDOW": 48})
    normal = run_case(small_queue, 32 * KIB, "v2-bin", firmware={"FRAME_WINDOW": 12})
    assert big.writes_dropped == 0
    assert normal.writes_dropped == 0
    assert big.seconds <= normal.seconds * 1.15


def test_a_big_board_window_costs_little_on_a_lossy_link() -> None:
    # every loss makes the board drop what follows the gap: lines in flight
    # beyond what the link needs are sent twice for nothing
    big = run_case("lossy-proxy", 32 * KIB, "v2-bin", firmware={"FRAME_WINDOW": 24})
    normal = run_case("lossy-proxy", 32 * KIB, "v2-bin", firmware={"FRAME_WINDOW": 12})
    assert big.seconds <= normal.seconds * 1.15


def test_run_bench_renders_every_case() -> None:
    seen: list[CaseResult] = []
    result = run_bench(
        ["local"], [4], ["v1-saw", "v2"], heap=False, repeats=1, on_case=seen.append
    )
    assert [c.mode for c in result.cases] == ["v1-saw", "v2"]
    assert seen == result.cases
    table = render_table(result)
    markdown = render_markdown(result)
    assert table.count("local ") == 2
    rows = [line for line in markdown.splitlines() if line.startswith("| local |")]
    assert len(rows) == 2
    assert rows[0].split("|")[7].strip() == "1.0x"  # the baseline against itself
    speedup = result.cases[0].seconds / result.cases[1].seconds
    assert rows[1].split("|")[7].strip() == f"{speedup:.1f}x"
    cpu = result.cpu_by_mode()
    assert set(cpu) == {"v1-saw", "v2"}
    for client, upper in cpu.values():
        assert 0 < client <= upper
    data = json.loads(json.dumps(result.to_dict()))
    assert data["profiles"]["local"]["raw_capacity_bytes_s"] == pytest.approx(
        raw_capacity(PROFILES["local"])
    )
    assert len(data["cases"]) == 2
    assert data["heap"] is None


def test_run_bench_refuses_unknown_names() -> None:
    with pytest.raises(ValueError, match="profile"):
        run_bench(["wifi"], [4], ["v2"], heap=False)
    with pytest.raises(ValueError, match="mode"):
        run_bench(["proxy"], [4], ["v3"], heap=False)
    with pytest.raises(ValueError, match="content"):
        run_bench(["proxy"], [4], ["v2"], heap=False, content="lorem")


def test_deflated_frames_deliver_source_faster() -> None:
    """Same link, same board: fewer, fuller writes; random bytes go as before.

    Sooner only where the link is the ceiling: through the proxy a board
    stores about as many file bytes a second either way (its flash, plus a
    deflated frame's CPU, esp32_ota_sim.speed WRITE_COST_SHARES), so the time is
    compared on a proxy that gets half the packets per connection event."""
    plain = run_case("proxy", 16 * KIB, "v2-bin", content="source")
    zipped = run_case("proxy", 16 * KIB, "v2-zip", content="source")
    assert zipped.bytes_delivered == plain.bytes_delivered == 16 * KIB
    assert zipped.writes < 0.7 * plain.writes
    assert zipped.wire_bytes < 0.7 * plain.wire_bytes
    assert zipped.chunk > 1.4 * plain.chunk  # file bytes per write
    slow_link = replace(PROFILES["proxy"], packets_per_event=2)
    plain = run_case(slow_link, 16 * KIB, "v2-bin", content="source")
    zipped = run_case(slow_link, 16 * KIB, "v2-zip", content="source")
    assert zipped.seconds < plain.seconds
    noise = run_case("proxy", 16 * KIB, "v2-zip")
    bare = run_case("proxy", 16 * KIB, "v2-bin")
    assert (noise.seconds, noise.writes, noise.wire_bytes) == (
        bare.seconds,
        bare.writes,
        bare.wire_bytes,
    )


def test_source_content_is_a_frozen_snapshot_of_real_python() -> None:
    snapshot = FROZEN_SOURCE.read_bytes()
    tree = ast.parse(snapshot)  # real code, cut at a statement boundary
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    assert {"OTAManager", "OTAClient"} <= classes  # the firmware, then the client
    source = source_bytes(64 * KIB)
    assert snapshot.startswith(source)
    assert source_bytes(10 * 1024 * KIB)[: 64 * KIB] == source  # repeats to any size
    assert source_bytes(len(snapshot) + 5) == snapshot + snapshot[:5]
    result = run_bench(
        ["proxy"], [4], ["v2-bin"], heap=False, repeats=1, content="source"
    )
    (case,) = result.cases
    assert case.content == "source"
    assert case.bytes_delivered == 4 * KIB
    assert "4 KB source" in render_table(result)


def test_heap_figures_come_from_micropython() -> None:
    heap = measure_heap()
    assert heap.ok, heap.error
    assert heap.stream_peak_bytes is not None
    assert heap.manager_peak_bytes is not None
    assert heap.goal_bytes is not None
    # the whole stack holds the engine plus the queued writes of a window
    assert 0 < heap.manager_peak_bytes < heap.stream_peak_bytes <= heap.goal_bytes
    stream = heap.figures["fw_perf_memory.test_mpy_stream_peak_growth"]
    assert stream["window"] >= 1
    result = BenchResult(seed=1, cases=[], heap=heap)
    assert f"peak growth {heap.stream_peak_bytes} B" in render_markdown(result)


def test_script_writes_json_and_markdown(tmp_path: Path) -> None:
    out_json = tmp_path / "bench.json"
    out_md = tmp_path / "bench.md"
    proc = subprocess.run(
        [
            str(ROOT / "scripts" / "bench"),
            "--profiles",
            "proxy",
            "--sizes",
            "4",
            "--modes",
            "v1-saw,v2",
            "--seed",
            "2",
            "--repeats",
            "1",
            "--no-heap",
            "--json",
            str(out_json),
            "--markdown",
            str(out_md),
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert "v1 stop-and-wait hex" in proc.stdout
    data = json.loads(out_json.read_text())
    assert data["seed"] == 2
    assert [c["mode"] for c in data["cases"]] == ["v1-saw", "v2"]
    assert all(c["bytes_delivered"] == 4 * KIB for c in data["cases"])
    assert all(math.isfinite(c["seconds"]) for c in data["cases"])
    assert out_md.read_text().startswith("| profile | size | mode |")
    bad = subprocess.run(
        [str(ROOT / "scripts" / "bench"), "--modes", "v3"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "unknown mode" in bad.stderr
