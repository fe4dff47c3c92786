// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Measures how long the dashboard takes to show the first page of a dataset's records:
// a fresh headless Chromium (no cache) opens #/d/NAME/records and waits until the grid's
// cards and their thumbnails are on screen. Reports the median of --runs cold loads (a
// new browser context each time, the server restarted for the first).
//
// Usage: node web/tests/first_page.mjs STORE_URI DATASET [--runs 5] [--limit-ms 1000] [-- SERVE_ARGS...]
// Exit 1 when the median is above --limit-ms.
import { chromium } from "playwright-core";
import { findChromium, startServer, CHROMIUM_ARGS } from "./harness.mjs";

const [storeUri, dataset, ...rest] = process.argv.slice(2);
if (!storeUri || !dataset) {
  console.error("usage: node web/tests/first_page.mjs STORE_URI DATASET [--runs N] [--limit-ms MS]");
  process.exit(2);
}
const opt = (name, dflt) => {
  const i = rest.indexOf(name);
  return i >= 0 ? Number(rest[i + 1]) : dflt;
};
const runs = opt("--runs", 5);
const limitMs = opt("--limit-ms", 1000);

const exe = findChromium();
if (!exe) {
  console.error("first_page: no chromium on PATH");
  process.exit(1);
}
const dash = rest.indexOf("--");
const { url, proc } = await startServer(storeUri, dash >= 0 ? rest.slice(dash + 1) : []);
const browser = await chromium.launch({ executablePath: exe, headless: true, args: CHROMIUM_ARGS });
const times = [];
const cardTimes = [];
const navTimes = [];
try {
  for (let i = 0; i < runs; i++) {
    const ctx = await browser.newContext({ viewport: { width: 1366, height: 768 } });
    const page = await ctx.newPage();
    const t0 = Date.now();
    await page.goto(`${url}/#/d/${encodeURIComponent(dataset)}/records`);
    // In the page: milliseconds since its navigation started (the browser's own clock).
    const inPage = await page.waitForFunction(() => document.querySelectorAll("#record-grid a.card").length > 0 && performance.now(), null, { timeout: 30000, polling: 5 });
    const navMs = Math.round(await inPage.jsonValue());
    const cardsMs = Date.now() - t0;
    await page.waitForFunction(() => {
      const cards = document.querySelectorAll("#record-grid a.card");
      const imgs = [...document.querySelectorAll("#record-grid img")];
      return cards.length > 0 && imgs.slice(0, 12).every((im) => im.complete && im.naturalWidth > 0);
    }, null, { timeout: 30000, polling: 5 });
    const ms = Date.now() - t0;
    const info = await page.evaluate(() => ({
      cards: document.querySelectorAll("#record-grid a.card").length,
      pager: document.querySelector(".pager span")?.textContent ?? "",
      api: performance.getEntriesByType("resource").filter((e) => e.name.includes("/records?")).map((e) => e.duration.toFixed(1)),
    }));
    times.push(ms);
    cardTimes.push(cardsMs);
    navTimes.push(navMs);
    console.log(`load ${i + 1}: ${cardsMs} ms to ${info.cards} cards (${navMs} ms after navigation start), ${ms} ms with the first 12 thumbnails decoded; records request ${info.api.join(", ")} ms; ${info.pager}`);
    await ctx.close();
  }
} finally {
  await browser.close();
  proc.kill("SIGTERM");
}
times.sort((a, b) => a - b);
cardTimes.sort((a, b) => a - b);
navTimes.sort((a, b) => a - b);
const median = times[Math.floor(times.length / 2)];
console.log(`first page of ${dataset}: cards shown median ${cardTimes[Math.floor(cardTimes.length / 2)]} ms (${navTimes[Math.floor(navTimes.length / 2)]} ms after navigation start); with thumbnails median ${median} ms, min ${times[0]} ms, max ${times[times.length - 1]} ms over ${runs} cold loads (limit ${limitMs} ms)`);
process.exit(median <= limitMs ? 0 : 1);
