"""Config flow for ESP32 OTA over Bluetooth: one entry per board."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import voluptuous as vol
from homeassistant.components.bluetooth import (
    BluetoothServiceInfoBleak,
    async_discovered_service_info,
)
from homeassistant.config_entries import (
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.const import CONF_ADDRESS
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.util import slugify

from .const import (
    CONF_AUTH_KEY,
    CONF_CONFIRM_TRIAL,
    CONF_ENCODING,
    CONF_NAME,
    CONF_PROBE_MINUTES,
    CONF_SOURCE_DIR,
    CONF_TOKEN,
    CONF_WINDOW,
    DEFAULT_PROBE_MINUTES,
    DEFAULT_SOURCE_ROOT,
    DOMAIN,
    ENCODING_AUTO,
    ENCODINGS,
    LOCAL_NAME_PREFIX,
    MAX_WINDOW,
    NUS_SERVICE_UUID,
    PROBE_MINUTES_RANGE,
)
from .data import with_defaults
from .nus_ota import valid_token

if TYPE_CHECKING:
    from collections.abc import Mapping

    from .data import Esp32OtaConfigEntry

_PASSWORD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def is_our_board(info: BluetoothServiceInfoBleak) -> bool:
    """Whether an advertisement matches the matcher of manifest.json."""
    return info.name.startswith(LOCAL_NAME_PREFIX)


def speaks_nus(info: BluetoothServiceInfoBleak) -> bool:
    """Whether a device advertises the Nordic UART Service (maybe one of ours)."""
    return NUS_SERVICE_UUID in info.service_uuids


def default_source_dir(name: str, address: str) -> str:
    """Return the default folder of a board, relative to the config dir."""
    slug = slugify(name) or "board"
    tail = address.replace(":", "").replace("-", "")[-4:].lower()
    if not slug.endswith(tail):
        slug = f"{slug}_{tail}"
    return f"{DEFAULT_SOURCE_ROOT}/{slug}"


def resolve_source_dir(hass: HomeAssistant, source_dir: str) -> Path:
    """Return the absolute folder; relative paths are under the config dir."""
    return Path(hass.config.path(source_dir))


def _allowed_folder(hass: HomeAssistant, folder: Path) -> bool:
    """Inside the config directory or an allowlisted one (blocking: resolves)."""
    config_dir = Path(hass.config.config_dir).resolve()
    return folder.resolve().is_relative_to(config_dir) or hass.config.is_allowed_path(
        str(folder)
    )


def _ensure_folder(folder: Path) -> str | None:
    """Create the folder if needed; return an error key or None (blocking)."""
    if folder.exists() and not folder.is_dir():
        return "not_a_folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return "cannot_create_folder"
    return None


async def async_check_folder(hass: HomeAssistant, source_dir: str) -> str | None:
    """Make a board's folder if needed; return an error key or None."""
    if not source_dir:
        return "folder_required"
    folder = resolve_source_dir(hass, source_dir)
    if not await hass.async_add_executor_job(_allowed_folder, hass, folder):
        return "folder_not_allowed"
    return await hass.async_add_executor_job(_ensure_folder, folder)


def token_error(token: str) -> str | None:
    """Error key for a token the protocol cannot carry (nus_ota's rule), or None."""
    return "invalid_token" if token and not valid_token(token) else None


def credentials_schema(options: Mapping[str, Any]) -> dict[vol.Marker, Any]:
    """Form fields for the HMAC key and v1 token, suggesting the current ones."""
    return {
        vol.Optional(
            CONF_AUTH_KEY,
            description={"suggested_value": options.get(CONF_AUTH_KEY, "")},
        ): _PASSWORD,
        vol.Optional(
            CONF_TOKEN,
            description={"suggested_value": options.get(CONF_TOKEN, "")},
        ): _PASSWORD,
    }


def credentials_options(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Return the non-empty credentials of a submitted form, as options."""
    options: dict[str, str] = {}
    if token := user_input.get(CONF_TOKEN, "").strip():
        options[CONF_TOKEN] = token
    if key := user_input.get(CONF_AUTH_KEY, ""):
        options[CONF_AUTH_KEY] = key
    return options


def _title(info: BluetoothServiceInfoBleak) -> str:
    """Name a board by its advertised name, else its address."""
    return info.name or info.address


class Esp32OtaConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a board found over Bluetooth."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing discovered."""
        self._discovery_info: BluetoothServiceInfoBleak | None = None
        self._discovered: dict[str, BluetoothServiceInfoBleak] = {}

    @staticmethod
    @callback
    def async_get_options_flow(
        config_entry: Esp32OtaConfigEntry,
    ) -> Esp32OtaOptionsFlow:
        """Return the options flow (source folder and credentials)."""
        return Esp32OtaOptionsFlow()

    async def async_step_bluetooth(
        self, discovery_info: BluetoothServiceInfoBleak
    ) -> ConfigFlowResult:
        """Handle a board found by the manifest's Bluetooth matchers."""
        await self.async_set_unique_id(discovery_info.address)
        # The address is all a known board's entry keeps from discovery.
        self._abort_if_unique_id_configured()
        self._discovery_info = discovery_info
        self.context["title_placeholders"] = {"name": _title(discovery_info)}
        return await self.async_step_bluetooth_confirm()

    async def async_step_bluetooth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask the user to confirm a discovered board."""
        assert self._discovery_info is not None
        if user_input is not None:
            return await self._async_create(self._discovery_info)
        self._set_confirm_only()
        return self.async_show_form(
            step_id="bluetooth_confirm",
            description_placeholders={
                "name": _title(self._discovery_info),
                "address": self._discovery_info.address,
            },
        )

    async def async_step_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Let the user pick a board among the connectable ones in range."""
        if user_input is not None:
            info = self._discovered[user_input[CONF_ADDRESS]]
            await self.async_set_unique_id(info.address, raise_on_progress=False)
            self._abort_if_unique_id_configured()
            return await self._async_create(info)

        configured = self._async_current_ids(include_ignore=False)
        added = 0
        for info in async_discovered_service_info(self.hass, connectable=True):
            if not (is_our_board(info) or speaks_nus(info)):
                continue
            if info.address in configured:
                added += 1
            else:
                self._discovered[info.address] = info
        if not self._discovered:
            return self.async_abort(
                reason="all_boards_added" if added else "no_devices_found",
                description_placeholders={"count": str(added)},
            )

        ours = sorted(
            self._discovered.values(),
            key=lambda info: (not is_our_board(info), _title(info), info.address),
        )
        return self.async_show_form(
            step_id="user",
            data_schema=vol.Schema(
                {
                    vol.Required(CONF_ADDRESS): vol.In(
                        {
                            info.address: f"{_title(info)} ({info.address})"
                            for info in ours
                        }
                    )
                }
            ),
        )

    async def async_step_reauth(
        self, entry_data: Mapping[str, Any]
    ) -> ConfigFlowResult:
        """Ask for credentials: the board refused ours, or asked for some."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the HMAC key or v1 token; the entry reloads with them."""
        entry = self._get_reauth_entry()
        errors: dict[str, str] = {}
        shown: Mapping[str, Any] = entry.options
        if user_input is not None:
            if error := token_error(user_input.get(CONF_TOKEN, "").strip()):
                errors[CONF_TOKEN] = error
            else:
                kept = {
                    key: value
                    for key, value in entry.options.items()
                    if key not in (CONF_AUTH_KEY, CONF_TOKEN)
                }
                return self.async_update_reload_and_abort(
                    entry, options={**kept, **credentials_options(user_input)}
                )
            shown = user_input
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=vol.Schema(credentials_schema(shown)),
            errors=errors,
            description_placeholders={"name": entry.title},
        )

    async def _async_create(self, info: BluetoothServiceInfoBleak) -> ConfigFlowResult:
        """Create the entry with a default source folder, made if missing."""
        source_dir = default_source_dir(info.name, info.address)
        await self.hass.async_add_executor_job(
            _ensure_folder, resolve_source_dir(self.hass, source_dir)
        )
        return self.async_create_entry(
            title=_title(info),
            data={CONF_ADDRESS: info.address, CONF_NAME: info.name},
            options={CONF_SOURCE_DIR: source_dir},
        )


_ENCODING = SelectSelector(
    SelectSelectorConfig(
        options=list(ENCODINGS),
        mode=SelectSelectorMode.DROPDOWN,
        translation_key=CONF_ENCODING,
    )
)
_WINDOW = NumberSelector(
    NumberSelectorConfig(min=0, max=MAX_WINDOW, step=1, mode=NumberSelectorMode.BOX)
)


_PROBE_MINUTES = NumberSelector(
    NumberSelectorConfig(
        min=PROBE_MINUTES_RANGE[0],
        max=PROBE_MINUTES_RANGE[1],
        step=1,
        mode=NumberSelectorMode.BOX,
        unit_of_measurement="min",
    )
)


class Esp32OtaOptionsFlow(OptionsFlowWithReload):
    """Source folder, credentials and transfer settings of one board."""

    async def async_step_init(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Edit the options."""
        errors: dict[str, str] = {}
        options: Mapping[str, Any] = with_defaults(self.config_entry.options)
        if user_input is not None:
            source_dir = user_input[CONF_SOURCE_DIR].strip()
            if error := await async_check_folder(self.hass, source_dir):
                errors[CONF_SOURCE_DIR] = error
            if error := token_error(user_input.get(CONF_TOKEN, "").strip()):
                errors[CONF_TOKEN] = error
            if not errors:
                data: dict[str, Any] = {
                    CONF_SOURCE_DIR: source_dir,
                    **credentials_options(user_input),
                    CONF_CONFIRM_TRIAL: user_input[CONF_CONFIRM_TRIAL],
                }
                minutes = int(user_input[CONF_PROBE_MINUTES])
                if minutes != DEFAULT_PROBE_MINUTES:
                    data[CONF_PROBE_MINUTES] = minutes
                if window := int(user_input.get(CONF_WINDOW) or 0):
                    data[CONF_WINDOW] = window
                if (encoding := user_input[CONF_ENCODING]) != ENCODING_AUTO:
                    data[CONF_ENCODING] = encoding
                return self.async_create_entry(data=data)
            options = user_input

        return self.async_show_form(
            step_id="init",
            data_schema=vol.Schema(
                {
                    vol.Required(
                        CONF_SOURCE_DIR, default=options.get(CONF_SOURCE_DIR, "")
                    ): str,
                    **credentials_schema(options),
                    vol.Required(
                        CONF_CONFIRM_TRIAL,
                        default=options[CONF_CONFIRM_TRIAL],
                    ): BooleanSelector(),
                    vol.Required(
                        CONF_PROBE_MINUTES,
                        default=options[CONF_PROBE_MINUTES],
                    ): _PROBE_MINUTES,
                    vol.Optional(
                        CONF_WINDOW,
                        description={"suggested_value": options.get(CONF_WINDOW)},
                    ): _WINDOW,
                    vol.Required(
                        CONF_ENCODING,
                        default=options.get(CONF_ENCODING, ENCODING_AUTO),
                    ): _ENCODING,
                }
            ),
            errors=errors,
            description_placeholders={"config_dir": self.hass.config.config_dir},
        )
