// Headless Chromium for tests/browser/ui_test.cjs and load.cjs: Debian's
// /usr/bin/chromium driven by playwright-core over its debugging pipe, with
// exactly the flags below (Playwright's own defaults are turned off), a
// fresh profile directory each launch, and every console error and page
// error of the page collected.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { chromium } = require("playwright-core");

const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--disable-quic",
];

// Returns { browser, page, errors, close }. `errors` fills with every
// console.error and uncaught page error; close() shuts Chromium down and
// removes the profile.
async function launch({ width = 1400, height = 1000 } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "snap-ui-chromium-"));
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    // Only FLAGS; --remote-debugging-pipe is how Playwright talks to it.
    ignoreDefaultArgs: true,
    args: [...FLAGS, `--user-data-dir=${profile}`, "--remote-debugging-pipe"],
    timeout: 60_000,
  });
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  const errors = [];
  page.on("console", (m) => {
    if (m.type() === "error") errors.push(`console.error: ${m.text()} (${m.location().url}:${m.location().lineNumber})`);
  });
  page.on("pageerror", (e) => errors.push(`page error: ${e.stack || e.message}`));
  page.on("requestfailed", (r) => errors.push(`request failed: ${r.url()} (${r.failure() && r.failure().errorText})`));
  const close = async () => {
    await browser.close().catch(() => {});
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { browser, page, errors, close };
}

// Waits until the page says its view `name` has rendered (app.js sets
// body[data-view] and body[data-rendered] once the charts are drawn).
async function rendered(page, name, timeout = 30_000) {
  await page.waitForFunction((v) => document.body.dataset.view === v && document.body.dataset.rendered !== undefined,
    name, { timeout });
}

module.exports = { FLAGS, launch, rendered };
