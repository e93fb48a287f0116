// The browser part of scripts/ui_check: onboarding, discovery, a refused
// file (dialog and repair), the device page, Update with its phases, and the
// dialog refreshed after it.
// Runs against the Home Assistant that scripts/develop started.
import { mkdirSync, readFileSync, unlinkSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";

const out = process.env.UI_OUT ?? "build/ui";
const tools = process.env.UI_TOOLS ?? "build/ui-tools";
const require = createRequire(path.resolve(tools, "package.json"));
const { chromium } = require("playwright-core");

const BASE = "http://localhost:8123";
const CLIENT_ID = `${BASE}/`;
const BOARDS = [
  { entity: "update.esp32_ota_0001_scripts", name: "ESP32-OTA-0001" },
  { entity: "update.esp32_ota_0002_scripts", name: "ESP32-OTA-0002" },
];

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
mkdirSync(out, { recursive: true });

async function api(method, url, body, token, form = false) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (form) {
    headers["Content-Type"] = "application/x-www-form-urlencoded";
    payload = new URLSearchParams(body).toString();
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(BASE + url, { method, headers, body: payload });
  const text = await response.text();
  if (!response.ok) {
    throw new Error(`${method} ${url}: ${response.status} ${text}`);
  }
  return text ? JSON.parse(text) : null;
}

async function until(what, check, seconds = 120) {
  for (let i = 0; i < seconds * 4; i++) {
    const value = await check();
    if (value) return value;
    await sleep(250);
  }
  throw new Error(`timed out waiting for ${what}`);
}

// 1. Onboarding: the owner user, then the remaining steps, as the wizard does.
const { auth_code } = await api("POST", "/api/onboarding/users", {
  client_id: CLIENT_ID,
  name: "Demo Owner",
  username: "demo",
  password: "demo-password-1234",
  language: "en",
});
const tokens = await api(
  "POST",
  "/auth/token",
  { grant_type: "authorization_code", code: auth_code, client_id: CLIENT_ID },
  null,
  true,
);
const token = tokens.access_token;
// scripts/develop marks the location step (core_config) done beforehand.
const steps = await api("GET", "/api/onboarding");
const pending = (step) => steps.some((s) => s.step === step && !s.done);
if (pending("core_config")) await api("POST", "/api/onboarding/core_config", {}, token);
if (pending("analytics")) await api("POST", "/api/onboarding/analytics", {}, token);
if (pending("integration")) {
  await api(
    "POST",
    "/api/onboarding/integration",
    { client_id: CLIENT_ID, redirect_uri: `${BASE}/?auth_callback=1` },
    token,
  );
}
console.log("ui_check: onboarding done (user demo)");

// 2. The browser, logged in with those tokens (what the login page stores).
const browser = await chromium.launch({
  executablePath: "/usr/bin/chromium",
  headless: true,
  args: [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
// A new, empty profile (user data dir) per context.
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
await context.addInitScript((stored) => {
  window.localStorage.setItem("hassTokens", JSON.stringify(stored));
}, {
  hassUrl: BASE,
  clientId: CLIENT_ID,
  access_token: tokens.access_token,
  refresh_token: tokens.refresh_token,
  token_type: "Bearer",
  expires_in: tokens.expires_in,
  expires: Date.now() + tokens.expires_in * 1000,
});
const page = await context.newPage();
const browserLog = [];
page.on("console", (m) => browserLog.push(`${m.type()}: ${m.text()}`));
// The brands CDN is out of reach here (no internet). Our icon is served in
// its place, as Home Assistant 2026.3 serves it from brand/ (and the CDN once
// the brand is submitted); other integrations' icons are only counted.
const ourIcon = readFileSync("custom_components/esp32_ota/brand/icon.png");
const offlineBrands = new Set();
await context.route("https://brands.home-assistant.io/**", (route) => {
  const url = route.request().url();
  if (/\/esp32_ota\/(dark_)?icon(@2x)?\.png$/.test(url)) {
    return route.fulfill({ status: 200, contentType: "image/png", body: ourIcon });
  }
  offlineBrands.add(new URL(url).pathname);
  return route.abort();
});
// Every other image that did not load, on any page of the walk.
const brokenImages = [];
page.on("response", (r) => {
  if (r.request().resourceType() === "image" && r.status() >= 400) {
    brokenImages.push(`${r.status()} ${r.url()}`);
  }
});
page.on("requestfailed", (r) => {
  if (r.resourceType() !== "image") return;
  if (r.url().startsWith("https://brands.home-assistant.io/")) return;
  brokenImages.push(`failed ${r.url()}`);
});
page.on("framenavigated", (frame) => {
  if (frame === page.mainFrame()) browserLog.push(`navigated: ${frame.url()}`);
});
const openMoreInfo = async (entityId) => {
  await page.waitForFunction(() => document.querySelector("home-assistant")?.hass?.connected);
  await page.evaluate((id) => {
    document.querySelector("home-assistant").dispatchEvent(
      new CustomEvent("hass-more-info", {
        detail: { entityId: id },
        bubbles: true,
        composed: true,
      }),
    );
  }, entityId);
};
const shot = async (name) => {
  await page.screenshot({ path: path.join(out, name) });
  console.log(`ui_check: ${name}`);
};

try {
  // 3. Both virtual boards are discovered through the virtual ESPHome proxy.
  await page.goto(`${BASE}/config/integrations/dashboard`);
  await page.waitForFunction(() => document.querySelector("home-assistant")?.hass?.connected);
  const callWS = (message) =>
    page.evaluate((m) => document.querySelector("home-assistant").hass.callWS(m), message);
  const discovered = async () =>
    (await callWS({ type: "config_entries/flow/progress" })).filter(
      (flow) => flow.handler === "esp32_ota",
    );
  await until("two discovered boards", async () => (await discovered()).length >= 2);
  await page.getByText("ESP32-OTA-0001").first().waitFor();
  await page.getByText("ESP32-OTA-0002").first().waitFor();
  await sleep(1000);
  await shot("01-discovered.png");

  // 4. Add them (what the "Add" button of a discovered card does: confirm).
  for (const flow of await discovered()) {
    const result = await api(
      "POST",
      `/api/config/config_entries/flow/${flow.flow_id}`,
      {},
      token,
    );
    console.log(`ui_check: added ${result.title} (${result.type})`);
  }
  for (const board of BOARDS) {
    await until(`${board.entity} to offer an update`, async () => {
      const response = await fetch(`${BASE}/api/states/${board.entity}`, {
        headers: { Authorization: `Bearer ${token}` },
      });
      if (!response.ok) return false;
      const state = await response.json();
      return state.state === "on" && state.attributes.installed_version ? state : false;
    });
  }
  await page.goto(`${BASE}/config/updates`);
  await page.getByText("ESP32-OTA-0002").first().waitFor();
  await sleep(1000);
  await shot("02-updates.png");

  const state = (entity) => api("GET", `/api/states/${entity}`, undefined, token);
  const rescan = (entity) =>
    api("POST", "/api/services/homeassistant/update_entity", { entity_id: entity }, token);
  const closeDialog = async () => {
    await page.keyboard.press("Escape");
    await sleep(500);
  };
  const [v2, v1] = BOARDS;
  const folder = path.join(out, "config", "esp32_ota", "esp32_ota_0001");

  // 5. A file the board would refuse: warned at the top of the dialog, no
  //    Update button, and a repair issue naming it and the board's allowlist.
  writeFileSync(path.join(folder, "settings.py"), "INTERVAL = 30\n");
  await rescan(v2.entity);
  await until("the refused file", async () => {
    const s = await state(v2.entity);
    return (s.attributes.files_refused ?? []).includes("settings.py");
  });
  await page.goto(`${BASE}/config/updates`);
  await page.getByText(v2.name).first().waitFor();
  await openMoreInfo(v2.entity);
  await page.getByText(/would refuse settings\.py/).first().waitFor();
  await sleep(1000);
  if (await page.getByRole("button", { name: /^update$/i }).isVisible()) {
    throw new Error("the dialog offers Update for a file the board refuses");
  }
  await shot("03-refused-dialog.png");
  await closeDialog();
  await page.goto(`${BASE}/config/repairs`);
  await page.getByText(/would refuse a file of its scripts folder/).first().waitFor();
  await sleep(1000);
  await shot("04-repairs.png");
  await page.getByText(/would refuse a file of its scripts folder/).first().click();
  await page.getByText(/accepts only app\.py, main\.py/).first().waitFor();
  await sleep(800);
  await shot("05-repair-issue.png");
  await closeDialog();
  unlinkSync(path.join(folder, "settings.py"));
  await rescan(v2.entity);
  await until("the refused file gone", async () => {
    const s = await state(v2.entity);
    return (s.attributes.files_refused ?? []).length === 0;
  });

  // 6. The device page: firmware version and diagnostic sensors.
  const devices = await callWS({ type: "config/device_registry/list" });
  const device = devices.find((d) => d.name === v2.name);
  await page.goto(`${BASE}/config/devices/device/${device.id}`);
  await page.getByText(/Firmware/).first().waitFor();
  await page.getByText("Free flash").first().waitFor();
  await sleep(1500);
  await shot("06-device.png");

  // 7. Install on each board: the dialog, the phases, the refreshed dialog.
  for (const [index, board] of BOARDS.entries()) {
    const n = 7 + index * 5;
    const name = (i, what) => `${String(n + i).padStart(2, "0")}-${board.name}-${what}.png`;
    await page.goto(`${BASE}/config/updates`);
    await page.getByText(board.name).first().waitFor();
    await openMoreInfo(board.entity);
    const update = page.getByRole("button", { name: /^update$/i });
    await update.waitFor();
    await page.getByText(/\(to send\)/).first().waitFor();
    await sleep(1000);
    await shot(name(0, "dialog"));
    await update.click();
    const started = await until(`${board.entity} to start`, async () => {
      const s = await state(board.entity);
      return s.attributes.in_progress ? s : false;
    });
    // One screenshot in the transfer, one in a phase after it.
    const phases = [];
    let shotTransfer = false;
    let shotAfter = false;
    const done = await until(`${board.entity} to finish`, async () => {
      const s = await state(board.entity);
      const phase = s.attributes.install_phase;
      if (phase && phases.at(-1) !== phase) phases.push(phase);
      if (!shotTransfer && phase === "transfer" && s.attributes.update_percentage > 0) {
        shotTransfer = true;
        await shot(name(1, "transfer"));
      } else if (!shotAfter && ["applying", "restarting", "checking", "trial"].includes(phase)) {
        shotAfter = true;
        await shot(name(2, phase));
      }
      if (s.attributes.in_progress && s.attributes.update_percentage === 100) {
        throw new Error("100 % shown before the install was done");
      }
      return s.attributes.in_progress === false ? s : false;
    }, 600);
    console.log(`ui_check: ${board.name} phases: ${phases.join(" -> ")}`);
    // The open dialog follows the new state (up to date; its notes say what
    // they compared with); opened again, the notes are fetched anew.
    const upToDate = page.getByText("Up-to-date");
    if (!(await upToDate.first().isVisible())) await openMoreInfo(board.entity);
    await upToDate.first().waitFor();
    await sleep(1000);
    await shot(name(3, "done"));
    await closeDialog();
    await openMoreInfo(board.entity);
    await page.getByText(/app\.py \(\d+ bytes\) \(on the board\)/).first().waitFor();
    await sleep(1000);
    await shot(name(4, "reopened"));
    await closeDialog();
    console.log(
      `ui_check: ${board.name}: ${started.attributes.installed_version} -> ` +
        `${done.attributes.installed_version} (latest ${done.attributes.latest_version}, ` +
        `state ${done.state})`,
    );
    if (done.attributes.installed_version !== done.attributes.latest_version) {
      throw new Error(`${board.name} did not end on the latest version`);
    }
  }
  await page.goto(`${BASE}/config/devices/device/${device.id}`);
  await page.getByText("Free flash").first().waitFor();
  await sleep(1500);
  await shot("17-device-after.png");
  await page.goto(`${BASE}/config/updates`);
  await sleep(1500);
  await shot("18-updates-after.png");
  // No broken image anywhere we went.
  if (brokenImages.length) throw new Error(`broken images: ${brokenImages.join(", ")}`);
  console.log("ui_check: no broken image");
  console.log(`ui_check: other integrations' brand icons (offline): ${[...offlineBrands].join(" ")}`);
} catch (err) {
  await shot("error.png").catch(() => {});
  throw err;
} finally {
  writeFileSync(path.join(out, "browser.log"), browserLog.join("\n") + "\n");
  await browser.close();
}
