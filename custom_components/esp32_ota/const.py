"""Constants for the ESP32 OTA over Bluetooth integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

DOMAIN: Final = "esp32_ota"

# Config entry data.
CONF_NAME: Final = "name"

# Options.
CONF_SOURCE_DIR: Final = "source_dir"
CONF_AUTH_KEY: Final = "auth_key"
CONF_TOKEN: Final = "token"  # noqa: S105 (an option key, not a secret)

# Where board folders live by default, relative to the HA config directory.
DEFAULT_SOURCE_ROOT: Final = "esp32_ota"

# Nordic UART Service, and the name prefix our firmware advertises (keep in
# step with the "bluetooth" matcher in manifest.json).
NUS_SERVICE_UUID: Final = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
LOCAL_NAME_PREFIX: Final = "ESP32-OTA"

# Attempts of bleak-retry-connector per connection (each up to 20 s, which
# covers a proxy's ~12 s); the OTA library tries a few connections on top.
CONNECT_ATTEMPTS: Final = 2
# How long a v1 board's application gets to answer VERSION.
VERSION_REPLY_TIMEOUT: Final = 3.0
# How often the source folder is checked for changes (a stat walk, cheap).
SOURCE_SCAN_INTERVAL: Final = timedelta(seconds=30)
# How often we connect briefly to see what the board runs (another client
# may have updated it).
BOARD_REFRESH_INTERVAL: Final = timedelta(hours=1)

STORAGE_VERSION: Final = 1
