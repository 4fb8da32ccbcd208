// The end-to-end test of `snap ui` in headless Chromium (run by run.sh):
//   node ui_test.cjs URL SHOTS_DIR SPEC_JSON
// SPEC_JSON: {"sessions": [names], "file": a checkpoint every snapshot holds,
// "tensors": its tensor names, sorted, "changed_tensor": the one each epoch changes,
// "config": {"path", "line"} a key change between epochs 1 and 2}.
// Exits 1 with the failed checks listed; any console or page error fails.
"use strict";

const assert = require("assert/strict");
const path = require("path");
const { launch, rendered } = require("./browser.cjs");

const [url, shots, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);

async function shot(page, name) {
  const file = path.join(shots, name);
  await page.screenshot({ path: file, fullPage: true });
  console.log(`screenshot ${file}`);
}

// Reads what the charts drew: per chart, its metric, uPlot's series labels
// (the x series left out) and how many canvas pixels have each series' colour.
function chartState() {
  const near = (a, b) => Math.abs(a[0] - b[0]) < 12 && Math.abs(a[1] - b[1]) < 12 && Math.abs(a[2] - b[2]) < 12;
  const rgb = (css) => { const c = document.createElement("canvas").getContext("2d"); c.fillStyle = css; const h = c.fillStyle; return [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)); };
  return [...document.querySelectorAll(".chart")].map((box) => {
    const u = box.uplot;
    const canvas = box.querySelector("canvas");
    const px = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
    const series = u.series.slice(1).map((s, i) => {
      const want = rgb(typeof s._stroke === "string" ? s._stroke : s.stroke(u, i + 1));
      let n = 0;
      for (let i = 0; i < px.length; i += 4) if (px[i + 3] > 200 && near([px[i], px[i + 1], px[i + 2]], want)) n++;
      return { label: s.label, pixels: n };
    });
    const legend = [...box.querySelectorAll(".u-legend .u-series")].slice(1).map((tr) => tr.textContent.trim());
    return { metric: box.dataset.metric, series, legend, points: u.data[0].length };
  });
}

async function main() {
  const { page, errors, close } = await launch();
  const failures = [];
  const check = async (what, f) => {
    try { await f(); console.log(`ok   ${what}`); } catch (e) { failures.push(`${what}: ${e.message}`); console.log(`FAIL ${what}: ${e.message}`); }
  };
  try {
    const metrics = await (await fetch(url + "api/metrics")).json();
    await page.goto(url);
    await rendered(page, "sessions");

    await check("the sessions table has one row per session, by name", async () => {
      const names = await page.$$eval("#sessions-table tbody tr", (trs) => trs.map((tr) => tr.cells[0].textContent.trim()));
      assert.deepEqual([...names].sort(), [...spec.sessions].sort());
      const outcomes = await page.$$eval("#sessions-table tbody tr", (trs) => trs.map((tr) => tr.cells[1].textContent.trim()));
      assert.deepEqual(outcomes, spec.sessions.map(() => "exited 0"));
    });

    await check("each metric's chart has one drawn line per session", async () => {
      const charts = await page.evaluate(chartState);
      assert.deepEqual(charts.map((c) => c.metric).sort(), [...metrics.metrics].sort());
      for (const c of charts) {
        assert.deepEqual(c.series.map((s) => s.label), spec.sessions, `${c.metric}: series`);
        assert.equal(c.legend.length, spec.sessions.length, `${c.metric}: legend rows ${JSON.stringify(c.legend)}`);
        for (const s of c.series) assert.ok(s.pixels > 20, `${c.metric}: the line of ${s.label} has ${s.pixels} pixels of its colour`);
      }
    });
    await shot(page, "sessions.png");

    // Click the session's last snapshot in the table: its files.
    const first = spec.sessions[0];
    await page.locator("#sessions-table tbody td:first-child a", { hasText: new RegExp(`^${first}$`) }).click();
    await rendered(page, "snapshot");
    await check(`a snapshot of ${first} lists its files`, async () => {
      const paths = await page.$$eval("#files tbody tr", (trs) => trs.map((tr) => tr.cells[0].textContent.trim()));
      assert.ok(paths.includes(spec.file), `${spec.file} not in ${JSON.stringify(paths)}`);
      assert.ok(paths.includes(spec.config.path), `${spec.config.path} not in ${JSON.stringify(paths)}`);
      const session = await page.$eval("dl.meta", (dl) => dl.textContent);
      assert.ok(session.includes(first), session);
    });
    await check("its checkpoint's tensors open", async () => {
      await page.locator("#files tbody tr", { has: page.locator("td:first-child", { hasText: spec.file }) }).locator("button.tensors").click();
      await page.waitForSelector("#tensor-table", { timeout: 10_000 });
      const names = await page.$$eval("#tensor-table tbody tr", (trs) => trs.map((tr) => tr.cells[0].textContent.trim()));
      assert.deepEqual(names, spec.tensors);
    });
    await shot(page, "snapshot.png");

    // Back to the curves; click the epoch-2 point of the first session's
    // loss line: that snapshot opens, and its diff against epoch 1 shows
    // the config key that changed.
    await page.goBack();
    await rendered(page, "sessions");
    const row = metrics.rows.find((r) => r.session === first && r.epoch === 2);
    await check(`clicking the epoch-2 point of ${first} opens its snapshot`, async () => {
      const at = await page.evaluate(([s, metric]) => {
        const box = document.querySelector(`.chart[data-metric="${metric}"]`);
        const u = box.uplot;
        const si = u.series.findIndex((x) => x.label === s);
        const i = u.data[0].indexOf(2);
        const r = u.over.getBoundingClientRect();
        return { x: r.left + u.valToPos(2, "x"), y: r.top + u.valToPos(u.data[si][i], "y") };
      }, [first, "loss"]);
      await page.mouse.move(at.x, at.y);
      await page.waitForSelector("#tooltip:not([hidden])", { timeout: 5_000 });
      const tip = await page.$eval("#tooltip", (t) => t.textContent);
      assert.ok(tip.includes(first) && tip.includes("epoch 2"), tip);
      await page.mouse.click(at.x, at.y);
      await rendered(page, "snapshot");
      assert.equal(await page.evaluate(() => location.hash), "#/snapshot/" + row.snapshot);
    });
    await check("the diff against the parent shows the changed config key and the log lines", async () => {
      await page.waitForSelector("#diff-table", { timeout: 15_000 });
      const text = await page.$eval("#diff-table", (t) => t.textContent);
      assert.ok(text.includes(spec.config.line), `"${spec.config.line}" not in the diff: ${text.slice(0, 2000)}`);
      const added = await page.$$eval("#diff-table pre.unified .added", (s) => s.map((x) => x.textContent));
      assert.ok(added.some((l) => l.startsWith("+epoch 2 ")), JSON.stringify(added));
      assert.ok(text.includes(`tensors changed: ${spec.changed_tensor}; 1 unchanged`), text.slice(0, 2000));
    });
    await shot(page, "diff.png");

    await page.click("#nav-storage");
    await rendered(page, "storage");
    await check("the storage view shows the repository and each session", async () => {
      const stats = await page.$eval("#repo-stats", (d) => d.textContent);
      assert.ok(stats.includes(`in ${spec.sessions.length} sessions`), stats);
      const rows = await page.$$eval("#storage-table tbody tr", (trs) => trs.length);
      assert.equal(rows, spec.sessions.length);
    });
    await shot(page, "storage.png");

    await check("no console error or page error", async () => {
      assert.deepEqual(errors, []);
    });
  } finally {
    await close();
  }
  if (failures.length) {
    console.log(`\n${failures.length} check(s) failed:\n- ${failures.join("\n- ")}`);
    process.exit(1);
  }
  console.log("all browser checks passed");
}

main().catch((e) => { console.error(e); process.exit(1); });
