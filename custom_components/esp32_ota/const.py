"""Constants for the ESP32 OTA over Bluetooth integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

from .nus_ota.window import PROXY_QUEUE

DOMAIN: Final = "esp32_ota"

# Config entry data.
CONF_NAME: Final = "name"

# Options.
CONF_SOURCE_DIR: Final = "source_dir"
CONF_AUTH_KEY: Final = "auth_key"
CONF_TOKEN: Final = "token"  # noqa: S105 (an option key, not a secret)
CONF_WINDOW: Final = "window"
CONF_ENCODING: Final = "encoding"
CONF_CONFIRM_TRIAL: Final = "confirm_trial"
CONF_PROBE_MINUTES: Final = "probe_minutes"

# Encoding choices of the options flow ("auto": what the board prefers).
ENCODING_AUTO: Final = "auto"
ENCODINGS: Final = (ENCODING_AUTO, "b64", "hex")
# Lines in flight the options flow accepts: the client never keeps more in
# flight (nus_ota.window), and the board caps it with its own window.
MAX_WINDOW: Final = PROXY_QUEUE
DEFAULT_CONFIRM_TRIAL: Final = True

# Where board folders live by default, relative to the HA config directory.
DEFAULT_SOURCE_ROOT: Final = "esp32_ota"

# Nordic UART Service, and the name prefix our firmware advertises (keep in
# step with the "bluetooth" matcher in manifest.json).
NUS_SERVICE_UUID: Final = "6e400001-b5a3-f393-e0a9-e50e24dcca9e"
LOCAL_NAME_PREFIX: Final = "ESP32-OTA"

# Attempts of bleak-retry-connector per connection (each up to 20 s, which
# covers a proxy's ~12 s); the OTA library tries a few connections on top.
CONNECT_ATTEMPTS: Final = 2
# How often the source folder is checked for changes (a stat walk, cheap).
SOURCE_SCAN_INTERVAL: Final = timedelta(seconds=30)
# How often we connect briefly to see what a board runs (another client may
# have updated it), in minutes, for boards that do not advertise their OTA
# state (v1 firmware); the others are read when their advertisement says
# something we cannot explain. Set per board in the options.
DEFAULT_PROBE_MINUTES: Final = 60
PROBE_MINUTES_RANGE: Final = (5, 1440)

# After an update a board runs the new version on trial until its program
# confirms it (the firmware's boot_guard confirms after 30 s up without a
# crash at the latest). With "confirm_trial" on, the install waits for that, asking the
# board this often, and fails when it is not confirmed within the timeout.
TRIAL_POLL_INTERVAL: Final = 10.0
TRIAL_TIMEOUT: Final = 150.0

STORAGE_VERSION: Final = 1
