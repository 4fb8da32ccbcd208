// The page-render measurement of benches/ui.sh:
//   node load.cjs URL ROUNDS SESSIONS
// Each round opens the page in a fresh browser context (nothing cached) and
// waits until the sessions table and every chart are drawn (app.js sets
// body[data-view=sessions] once the charts' frame has run). Checks that
// SESSIONS rows and SESSIONS lines per chart were drawn, then prints JSON:
// {"wall_ms": [...], "page_ms": [...], "charts": N}: wall_ms from the
// navigation's start (the browser's own clock) to drawn, page_ms the
// page's view time (its API calls and drawing, the script loaded).
"use strict";

const assert = require("assert/strict");
const { launch, rendered } = require("./browser.cjs");

const [url, roundsArg, sessionsArg] = process.argv.slice(2);
const rounds = Number(roundsArg || 5);
const sessions = Number(sessionsArg);

async function main() {
  const b = await launch();
  const out = { wall_ms: [], page_ms: [], charts: 0 };
  try {
    // A first load outside the rounds: Chromium's own start-up work.
    await b.page.goto(url);
    await rendered(b.page, "sessions", 120_000);
    for (let i = 0; i < rounds; i++) {
      const ctx = await b.browser.newContext({ viewport: { width: 1400, height: 1000 } });
      const page = await ctx.newPage();
      page.on("pageerror", (e) => b.errors.push(`page error: ${e.message}`));
      await page.goto(url);
      await rendered(page, "sessions", 120_000);
      const r = await page.evaluate(() => ({
        wall: Number(document.body.dataset.renderedAt),
        view: Number(document.body.dataset.rendered),
        rows: document.querySelectorAll("#sessions-table tbody tr").length,
        lines: [...document.querySelectorAll(".chart")].map((c) => c.uplot.series.length - 1),
      }));
      assert.equal(r.rows, sessions, "sessions table rows");
      assert.ok(r.lines.length > 0, "no chart");
      for (const n of r.lines) assert.equal(n, sessions, "lines per chart");
      out.wall_ms.push(r.wall);
      out.page_ms.push(r.view);
      out.charts = r.lines.length;
      await ctx.close();
    }
    assert.deepEqual(b.errors, []);
  } finally {
    await b.close();
  }
  console.log(JSON.stringify(out));
}

main().catch((e) => { console.error(e); process.exit(1); });
