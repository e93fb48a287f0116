"""What HACS and Home Assistant read before any of our code runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from awesomeversion import AwesomeVersion
from homeassistant import loader
from PIL import Image

from custom_components.esp32_ota.nus_ota.advert import SERVICE_UUID

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

ROOT = Path(__file__).resolve().parents[1]
INTEGRATION = ROOT / "custom_components" / "esp32_ota"
MANIFEST = json.loads((INTEGRATION / "manifest.json").read_text())

# The keys hacs.json may hold (HACS rejects any other).
HACS_KEYS = {
    "name",
    "content_in_root",
    "zip_release",
    "filename",
    "hide_default_branch",
    "country",
    "homeassistant",
    "hacs",
    "persistent_directory",
}


def test_manifest_key_order_and_required_keys() -> None:
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    for key in ("version", "documentation", "issue_tracker", "codeowners"):
        assert MANIFEST[key], key
    assert AwesomeVersion(MANIFEST["version"]).valid
    assert MANIFEST["dependencies"] == ["bluetooth_adapters"]
    assert MANIFEST["config_flow"] is True


def test_bluetooth_matchers_claim_only_our_boards() -> None:
    for matcher in MANIFEST["bluetooth"]:
        assert matcher["connectable"] is True
        # A bare NUS service UUID would claim other products too.
        assert set(matcher) - {"connectable", "service_uuid"}, matcher
        name = matcher.get("local_name")
        if name is not None:
            assert "*" not in name[:3]


def test_no_core_integration_claims_the_advertised_ota_state() -> None:
    # The firmware's OTA state goes in service data under this UUID; an
    # integration matching it (as kegtron matches manufacturer id 0xFFFF)
    # would be offered every board.
    import homeassistant.components

    components = Path(homeassistant.components.__path__[0])
    claimed = []
    for path in components.glob("*/manifest.json"):
        for matcher in json.loads(path.read_text()).get("bluetooth", []):
            uuids = {matcher.get("service_data_uuid"), matcher.get("service_uuid")}
            if SERVICE_UUID in uuids:
                claimed.append(path.parent.name)
    assert len(list(components.glob("*/manifest.json"))) > 1000
    assert claimed == []


async def test_home_assistant_loads_the_manifest(
    hass: HomeAssistant, enable_custom_integrations: None
) -> None:
    integration = await loader.async_get_integration(hass, "esp32_ota")
    assert integration.domain == "esp32_ota"
    assert str(integration.version) == MANIFEST["version"]
    matchers = await loader.async_get_bluetooth(hass)
    assert {"domain": "esp32_ota", "connectable": True, "local_name": "ESP32-OTA*"} in [
        dict(m) for m in matchers
    ]


def test_hacs_json() -> None:
    hacs = json.loads((ROOT / "hacs.json").read_text())
    assert set(hacs) <= HACS_KEYS
    assert hacs["name"]
    assert AwesomeVersion(hacs["homeassistant"]) <= AwesomeVersion("2026.2.3")


def test_translations_match_strings() -> None:
    strings = json.loads((INTEGRATION / "strings.json").read_text())
    english = json.loads((INTEGRATION / "translations" / "en.json").read_text())
    assert strings == english


def test_brand_icon() -> None:
    with Image.open(INTEGRATION / "brand" / "icon.png") as icon:
        assert icon.size == (256, 256)
        assert icon.format == "PNG"


def test_license_file_for_hacs() -> None:
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License\n")
    assert "Permission is hereby granted, free of charge" in text


def test_action_content_example_uses_files_the_default_allowlist_accepts() -> None:
    import ast

    import yaml

    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text())
    example = services["install_files"]["fields"]["content"]["example"]
    firmware = (ROOT / "device_firmware" / "ota_manager.py").read_text()
    line = next(x for x in firmware.splitlines() if "ALLOWED_FILES = " in x)
    allowed = ast.literal_eval(line.split("=", 1)[1].strip())
    assert set(json.loads(example)) <= allowed


def test_demo_sources_offer_a_newer_and_an_older_version(tmp_path: Path) -> None:
    from esp32_ota_sim.esphome_proxy.develop import write_demo_sources

    from custom_components.esp32_ota.source import SourceFolder

    folders = write_demo_sources(tmp_path, "v2,v1")
    assert len(folders) == 2
    for folder in folders:
        state = SourceFolder(folder).scan()
        assert state.latest is not None
        assert state.latest.version == "1.1.0"
        assert sorted(state.releases) == ["1.0.1", "1.1.0"]
    assert write_demo_sources(tmp_path, "v2,v1") == []  # kept as they are
