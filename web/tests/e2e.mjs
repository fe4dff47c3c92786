// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// End-to-end browser tests of the dashboard: playwright-core drives Debian's chromium
// headless against `dreamdb serve` on 127.0.0.1, over the small store of make_store.py.
//
// Usage: node web/tests/e2e.mjs [--junit FILE] [--screenshots DIR] [--demo-store URI]
// (--demo-store, or DREAMDB_E2E_DEMO_STORE: also walk the store scripts/demo.sh kept)
// Environment: DREAMDB_BIN (default .venv/bin/dreamdb), PYTHON (default .venv/bin/python),
// CHROMIUM (default: the first of chromium, chromium-browser on PATH), DREAMDB_E2E_STORE
// (a store URI to use instead of building one; the checks expect make_store.py's content).
// A missing chromium is a failure, never a skip. Prints "N passed, N failed" last.
import { spawnSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { root, webRoot, dreamdbBin as bin, findChromium, startServer as start, CHROMIUM_ARGS } from "./harness.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : dflt;
};
const shots = resolve(opt("--screenshots", join(root, "build", "test-logs", "screenshots")));
const junit = opt("--junit", null);
const python = process.env.PYTHON || join(root, ".venv", "bin", "python");
mkdirSync(shots, { recursive: true });

const results = [];
const t0 = Date.now();
function report() {
  const passed = results.filter((r) => r.ok).length;
  const failed = results.length - passed;
  if (junit) {
    const esc = (s) => String(s).replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]);
    const cases = results
      .map((r) => `  <testcase classname="web.e2e" name="${esc(r.name)}" time="${(r.ms / 1000).toFixed(3)}">${r.ok ? "" : `<failure message="${esc(r.error)}"/>`}</testcase>`)
      .join("\n");
    writeFileSync(junit, `<?xml version="1.0" encoding="UTF-8"?>\n<testsuite name="web.e2e" tests="${results.length}" failures="${failed}">\n${cases}\n</testsuite>\n`);
  }
  console.log(`e2e: ${((Date.now() - t0) / 1000).toFixed(1)} s, screenshots in ${shots}`);
  console.log(`${passed} passed, ${failed} failed`);
  return failed;
}

function fail(name, error) {
  results.push({ name, ok: false, ms: 0, error });
  console.log(`FAIL ${name}: ${error}`);
  process.exitCode = 1;
}

const exe = findChromium();
if (!exe || !existsSync(exe)) {
  fail("chromium present", "no chromium on PATH (Debian package `chromium`; scripts/bootstrap.sh installs it)");
  report();
  process.exit(1);
}
if (!existsSync(join(webRoot, "index.html"))) {
  fail("dashboard built", `${webRoot}/index.html missing: run scripts/build_web.sh`);
  report();
  process.exit(1);
}

// ---- the store and the server ----
const work = mkdtempSync(join(tmpdir(), "dreamdb-e2e-"));
let server = null;
let browser = null;
const cleanup = () => {
  if (server && server.exitCode === null) server.kill("SIGTERM");
  rmSync(work, { recursive: true, force: true });
};
process.on("exit", cleanup);

function check(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function startServer(storeUri) {
  const s = await start(storeUri);
  server = s.proc;
  return s.url;
}

let page;
let base;
let storeUri;
const consoleErrors = [];
const offsite = [];

async function test(name, fn) {
  const start = Date.now();
  try {
    await fn();
    results.push({ name, ok: true, ms: Date.now() - start });
    console.log(`ok   ${name} (${Date.now() - start} ms)`);
  } catch (e) {
    results.push({ name, ok: false, ms: Date.now() - start, error: e.message });
    console.log(`FAIL ${name}: ${e.message}`);
    process.exitCode = 1;
    if (page) await page.screenshot({ path: join(shots, `FAIL-${name.replace(/[^A-Za-z0-9]+/g, "-")}.png`), fullPage: true }).catch(() => {});
  }
}

async function shot(name) {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: false });
}

const rendered = () => page.evaluate(() => Number(document.body.dataset.rendered ?? 0));

/** Runs `action` (a click, a key, a hash change) and waits until the next view has rendered. */
async function nav(action, routePrefix) {
  const before = await rendered();
  await action();
  await page.waitForFunction(
    ([b, p]) => Number(document.body.dataset.rendered ?? 0) > b && (document.body.dataset.route === "error" || document.body.dataset.route.startsWith(p)),
    [before, routePrefix],
    { timeout: 15000 },
  );
  const route = await page.evaluate(() => document.body.dataset.route);
  if (route === "error") throw new Error(`the page shows an error: ${await page.textContent("main")}`);
}

/** Navigates by hash. */
async function go(hash, routePrefix) {
  await nav(() => page.evaluate((h) => (location.hash = h), hash), routePrefix);
}

async function imagesDecoded(selector) {
  await page.waitForFunction((sel) => {
    const imgs = [...document.querySelectorAll(sel)];
    return imgs.length > 0 && imgs.every((i) => i.complete && i.naturalWidth > 0);
  }, selector, { timeout: 10000 });
  return page.$$eval(selector, (imgs) => imgs.map((i) => i.naturalWidth));
}

try {
  storeUri = process.env.DREAMDB_E2E_STORE;
  if (!storeUri) {
    const r = spawnSync(python, [join(here, "make_store.py"), join(work, "store")], { encoding: "utf8", env: { ...process.env, DREAMDB_BIN: bin } });
    if (r.status !== 0) throw new Error(`make_store.py failed: ${r.stderr}`);
    storeUri = r.stdout.trim().split("\n").pop();
  }
  base = await startServer(storeUri);
  check(/^http:\/\/127\.0\.0\.1:\d+$/.test(base), `the server must listen on 127.0.0.1, got ${base}`);

  browser = await chromium.launch({ executablePath: exe, headless: true, args: CHROMIUM_ARGS });
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 } });
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  // Nothing may be fetched from outside the server (no CDN, no web font).
  await context.route("**/*", (route) => {
    const u = new URL(route.request().url());
    if (u.origin !== base && u.protocol !== "data:" && u.protocol !== "blob:") {
      offsite.push(u.href);
      return route.abort();
    }
    return route.continue();
  });

  await test("dashboard opens on the datasets", async () => {
    await nav(() => page.goto(base + "/"), "");
    const names = await page.$$eval("main table tbody tr td:first-child a", (as) => as.map((a) => a.textContent));
    check(names.includes("pets"), `datasets listed: ${names}`);
    await shot("01-datasets");
  });

  await test("sweep comparison: runs ranked, best and worst marked, chart, run details", async () => {
    await nav(() => page.click("text=pets"), "d/pets/records");
    await nav(() => page.click("nav.tabs >> text=Sweeps"), "d/pets/sweeps");
    await nav(() => page.click("main table >> text=tune"), "d/pets/sweep/tune");
    const rows = await page.$$eval("#runs tbody tr", (trs) => trs.map((tr) => ({ run: tr.dataset.run, cls: tr.className, text: tr.textContent })));
    check(rows.length === 3, `3 runs expected, got ${rows.length}`);
    check(rows.find((r) => r.run === "1").cls.includes("best"), "run 1 (val_error 0.24) must be marked best");
    check(rows.find((r) => r.run === "2").cls.includes("worst"), "run 2 (val_error 0.42) must be marked worst");
    check(rows[0].text.includes("0.1") && rows[1].text.includes("0.01"), "each run shows its lr parameter");
    const bars = await page.$$eval("svg.bars .bar", (gs) => gs.map((g) => g.getAttribute("class")));
    check(bars.length === 3 && bars.filter((c) => c.includes("best")).length === 1, `bar chart: ${bars}`);
    // Keyboard: focus the best run's row and press Enter for its parameters and commits.
    await page.focus('#runs tr[data-run="1"]');
    await page.keyboard.press("Enter");
    await page.waitForSelector("#run-details h2");
    const details = await page.textContent("#run-details");
    check(details.includes("sweep/tune/run-1") && details.includes("0.01"), `run details: ${details}`);
    check(/2 commits since the source/.test(details) && details.includes("run 1: predictions"), `run 1's own commits: ${details}`);
    await shot("02-sweep");
  });

  await test("a record across the runs: fields and image in every run", async () => {
    await nav(() => page.click("#sweep-records a.card >> nth=0"), "d/pets/sweep/tune/record");
    const runs = await page.$$eval("#across .run", (ds) => ds.map((d) => d.dataset.label));
    check(runs.length === 4, `source + 3 runs expected, got ${runs}`);
    const widths = await imagesDecoded("#across img");
    check(widths.length === 4 && widths.every((w) => w === 8), `images decoded: ${widths}`);
    const text = await page.textContent("main");
    check(text.includes("Fields that differ between runs: pred"), "pred must differ between runs");
    await shot("03-sweep-record");
  });

  await test("record page: image decoded, every field rendered", async () => {
    await go("#/d/pets/records", "d/pets/records");
    await nav(() => page.click("#record-grid a.card >> nth=3"), "d/pets/record/");
    const widths = await imagesDecoded("#record-fields img");
    check(widths[0] > 0, "the image must decode (naturalWidth > 0)");
    const fields = await page.$$eval("#record-fields dd[data-field]", (dds) => dds.map((d) => d.dataset.field));
    for (const f of ["image", "caption", "label", "score", "emb"]) check(fields.includes(f), `field ${f} rendered: ${fields}`);
    check(await page.$('#record-fields dd[data-field="emb"] svg.spark'), "the embedding is summarised with a sparkline");
    check((await page.textContent('#record-fields dd[data-field="emb"]')).includes("16-d · norm"), "embedding norm shown");
    await shot("04-record");
  });

  await test("arrays as small plots: a heat map for 2-d, a sparkline for 1-d", async () => {
    await go("#/d/arrays/record/1", "d/arrays/record/1");
    const cells = await page.$$eval('#record-fields dd[data-field="grid"] svg.heat rect', (rs) => rs.length);
    check(cells === 16, `4x4 heat map cells: ${cells}`);
    check(await page.$('#record-fields dd[data-field="curve"] svg.spark path.line'), "1-d array drawn as a sparkline");
    check((await page.textContent('#record-fields dd[data-field="grid"]')).includes("f32[4×4]"), "dtype and shape shown");
    await shot("04b-arrays");
    await page.goBack();
    await page.waitForFunction(() => document.body.dataset.route.startsWith("d/pets/record/"));
  });

  await test("search by example: nearest neighbours with scores", async () => {
    const anchor = (await page.evaluate(() => document.body.dataset.route)).split("/")[3];
    await nav(() => page.click("#similar-emb"), `d/pets/search/${anchor}`);
    const hits = await page.$$eval("#hits tbody tr", (trs) => trs.map((tr) => ({ a: tr.dataset.anchor, s: Number(tr.querySelector(".score").textContent) })));
    check(hits.length >= 5, `at least 5 hits, got ${hits.length}`);
    check(!hits.some((h) => h.a === anchor), "the query record itself is not a hit");
    for (let i = 1; i < hits.length; i++) check(hits[i - 1].s >= hits[i].s, `cosine scores descend: ${hits.map((h) => h.s)}`);
    check(hits[0].s > 0.5, `the nearest is close (cosine ${hits[0].s})`);
    await imagesDecoded("#hits img");
    await shot("05-search");
  });

  await test("history graph: snapshot, merge, follow to an older version", async () => {
    await nav(async () => {
      await page.keyboard.press("g");
      await page.keyboard.press("h");
    }, "d/pets/history");
    const n = await page.$$eval("#commits a.commit", (as) => as.length);
    check(n >= 8, `commits listed: ${n}`);
    check((await page.$$("svg.dag circle")).length === n, "one graph node per commit");
    check((await page.textContent("#commits")).includes("merge the experiment"), "the merge commit is listed");
    check(await page.$$eval("svg.dag path.edge", (ps) => ps.length) >= n - 1, "edges drawn");
    await shot("06-history");
    // Follow the snapshot v1 (240 records) to its version of the records.
    const row = page.locator("#commits a.commit", { has: page.locator(".badge.snapshot", { hasText: "v1" }) });
    check((await row.count()) === 1, "one commit carries the snapshot v1");
    const manifest = await row.getAttribute("data-manifest");
    await row.focus();
    await nav(() => page.keyboard.press("Enter"), "d/pets/records");
    await page.waitForFunction(() => document.getElementById("record-count")?.textContent !== "…");
    const text = await page.textContent("main .pager");
    check(text.includes("of 240") && text.includes(manifest.slice(0, 14)), `the older version (240 records at ${manifest}): ${text}`);
  });

  await test("record grid: filter and projection", async () => {
    await go("#/d/pets/records", "d/pets/records");
    await page.keyboard.press("/");
    await page.keyboard.type("label == 1");
    await page.fill('input[name="fields"]', "label,caption");
    await nav(() => page.keyboard.press("Enter"), "d/pets/records");
    check((await page.evaluate(() => location.hash)).includes("where="), "the filter is in the address");
    const cards = await page.$$eval("#record-grid a.card", (cs) => cs.map((c) => c.textContent));
    check(cards.length > 0 && cards.every((t) => t.includes("label1") && t.includes("red square") && !t.includes("score")), `filtered cards: ${cards.slice(0, 3)}`);
    // Next page keeps the filter and the version.
    await nav(() => page.keyboard.press("n"), "d/pets/records");
    check((await page.evaluate(() => location.hash)).includes("after="), "the next page is by anchor cursor");
    const more = await page.$$eval("#record-grid a.card", (cs) => cs.map((c) => c.textContent));
    check(more.length > 0 && more.every((t) => t.includes("label1")), "second page filtered too");
    await shot("07-filter");
  });

  await test("lineage and cost: trained-on snapshot, changes since, bytes per ref", async () => {
    await go("#/d/pets/cost", "d/pets/cost");
    const lineage = await page.textContent("#lineage");
    check(lineage.includes("experiment") && lineage.includes("v1"), `lineage: ${lineage}`);
    const changes = await page.textContent("#changes");
    check(/differ/.test(changes), `changes since v1: ${changes}`);
    const refs = await page.$$eval("#cost tbody tr", (trs) => trs.length);
    check(refs >= 7, `bytes for every ref, got ${refs}`);
    await shot("08-cost");
  });

  await test("keyboard help and focus outline", async () => {
    await page.keyboard.press("?");
    await page.waitForSelector("dialog#help[open]");
    check((await page.textContent("dialog#help")).includes("history graph"), "shortcuts listed");
    await page.keyboard.press("Escape");
    await page.waitForFunction(() => !document.getElementById("help").open);
    await page.keyboard.press("Tab");
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== "none", `the focused control is outlined (${outline})`);
    // j / k move through the grid, Enter opens the focused record.
    await go("#/d/pets/records", "d/pets/records");
    for (const key of ["j", "j", "j", "k"]) await page.keyboard.press(key);
    const focused = await page.evaluate(() => document.activeElement?.dataset.anchor);
    const second = await page.$eval("#record-grid a.card:nth-child(2)", (a) => a.dataset.anchor);
    check(focused === second, `j j j k focuses the second card (${focused} vs ${second})`);
    await nav(() => page.keyboard.press("Enter"), `d/pets/record/${second}`);
  });

  await test("bad input shows the server's error, named, and the app stays usable", async () => {
    const n0 = consoleErrors.length;
    for (const [hash, want] of [
      ["#/d/nope/records", "not_found"],
      ["#/d/pets/records?where=" + encodeURIComponent("label === 1"), "invalid_argument"],
      ["#/d/pets/record/99999", "not_found"],
    ]) {
      const before = await rendered();
      await page.evaluate((h) => (location.hash = h), hash);
      await page.waitForFunction((b) => Number(document.body.dataset.rendered ?? 0) > b, before);
      const route = await page.evaluate(() => document.body.dataset.route);
      const text = await page.textContent("main");
      check(route === "error" && text.includes(want), `${hash}: expected an error naming ${want}, got ${route}: ${text}`);
    }
    await nav(() => page.click("main >> text=Back to the datasets"), "");
    // The browser logs the 400/404 answers asked for here; only those are expected.
    const mine = consoleErrors.splice(n0);
    consoleErrors.push(...mine.filter((e) => !/status of (400|404)/.test(e)));
  });

  await test("a server with a token: the dashboard asks for it once and sends it, blobs too", async () => {
    const tokenFile = join(work, "token");
    writeFileSync(tokenFile, "e2e-token-0123456789abcdef\n");
    const s = await start(storeUri, ["--token-file", tokenFile]);
    try {
      const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
      const p2 = await ctx.newPage();
      let asked = 0;
      p2.on("dialog", (d) => {
        asked++;
        d.accept("e2e-token-0123456789abcdef");
      });
      await p2.goto(`${s.url}/#/d/pets/record/3`);
      await p2.waitForFunction(() => {
        const img = document.querySelector("#record-fields img");
        return img && img.complete && img.naturalWidth > 0;
      });
      check(asked === 1, `asked for the token ${asked} times`);
      await ctx.close();
    } finally {
      s.proc.kill("SIGTERM");
    }
  });

  const demoStore = opt("--demo-store", process.env.DREAMDB_E2E_DEMO_STORE || null);
  if (demoStore) {
    await test("the README demo's store: every page renders on it", async () => {
      const s = await start(demoStore);
      const saved = base;
      try {
        base = s.url;
        await page.goto("about:blank"); // a new document counts its renders from 0
        await nav(() => page.goto(`${base}/#/d/pets/records`), "d/pets/records");
        await imagesDecoded("#record-grid a.card:nth-child(-n+12) img"); // the rest load lazily
        await go("#/d/pets/sweep/tune", "d/pets/sweep/tune");
        check(await page.$$eval("#runs tbody tr.best", (trs) => trs.map((tr) => tr.dataset.run).join()) === "1", "the demo's best run is run 1");
        await shot("10-demo-sweep");
        await go("#/d/pets/history", "d/pets/history");
        check((await page.$$("#commits a.commit")).length >= 8, "the demo's history");
        await go("#/d/pets/record/42", "d/pets/record/42");
        await imagesDecoded("#record-fields img");
        await nav(() => page.click("#similar-emb"), "d/pets/search/42");
        check((await page.$$("#hits tbody tr")).length > 0, "neighbours of record 42");
        await go("#/d/pets/cost", "d/pets/cost");
        check((await page.textContent("#lineage")).includes("experiment"), "the training run's snapshot");
      } finally {
        base = saved;
        s.proc.kill("SIGTERM");
      }
    });
  }

  await test("no console errors, nothing fetched from outside the server", async () => {
    check(consoleErrors.length === 0, `console errors: ${consoleErrors.join(" | ")}`);
    check(offsite.length === 0, `offsite requests: ${offsite.join(" ")}`);
  });
} catch (e) {
  fail("setup", e.message);
} finally {
  if (browser) await browser.close().catch(() => {});
  if (server && server.exitCode === null) server.kill("SIGTERM");
}
process.exit(report() ? 1 : 0);
