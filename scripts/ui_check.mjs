// The browser part of scripts/ui_check: onboarding, discovery, Install.
// Runs against the Home Assistant that scripts/develop started.
import { mkdirSync, writeFileSync } from "node:fs";
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
await api("POST", "/api/onboarding/core_config", {}, token);
await api("POST", "/api/onboarding/analytics", {}, token);
await api(
  "POST",
  "/api/onboarding/integration",
  { client_id: CLIENT_ID, redirect_uri: `${BASE}/?auth_callback=1` },
  token,
);
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

  // 5. The update dialog of each board: press Install, wait until done.
  for (const [index, board] of BOARDS.entries()) {
    const n = 3 + index * 3;
    await page.goto(`${BASE}/config/updates`);
    await page.getByText(board.name).first().waitFor();
    await openMoreInfo(board.entity);
    const install = page.getByRole("button", { name: /^(install|update)$/i });
    await install.waitFor();
    await sleep(1000);
    await shot(`${String(n).padStart(2, "0")}-${board.name}-dialog.png`);
    await install.click();
    const started = await until(`${board.entity} to start`, async () => {
      const state = await api("GET", `/api/states/${board.entity}`, undefined, token);
      return state.attributes.in_progress ? state : false;
    });
    await until("some progress", async () => {
      const state = await api("GET", `/api/states/${board.entity}`, undefined, token);
      return (state.attributes.update_percentage ?? 0) > 0 || !state.attributes.in_progress;
    });
    await shot(`${String(n + 1).padStart(2, "0")}-${board.name}-installing.png`);
    const done = await until(`${board.entity} to finish`, async () => {
      const state = await api("GET", `/api/states/${board.entity}`, undefined, token);
      return state.attributes.in_progress === false ? state : false;
    }, 600);
    // The dialog shows the new state (reopened if the page reloaded meanwhile).
    const upToDate = page.getByText("Up-to-date");
    if (!(await upToDate.isVisible())) await openMoreInfo(board.entity);
    await upToDate.first().waitFor();
    await sleep(1000);
    await shot(`${String(n + 2).padStart(2, "0")}-${board.name}-done.png`);
    console.log(
      `ui_check: ${board.name}: ${started.attributes.installed_version} -> ` +
        `${done.attributes.installed_version} (latest ${done.attributes.latest_version}, ` +
        `state ${done.state})`,
    );
    if (done.attributes.installed_version !== done.attributes.latest_version) {
      throw new Error(`${board.name} did not end on the latest version`);
    }
  }
  await page.goto(`${BASE}/config/updates`);
  await sleep(1500);
  await shot("09-updates-after.png");
} catch (err) {
  await shot("error.png").catch(() => {});
  throw err;
} finally {
  writeFileSync(path.join(out, "browser.log"), browserLog.join("\n") + "\n");
  await browser.close();
}
