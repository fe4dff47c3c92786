// Copyright DreamDB developers. SPDX-License-Identifier: Apache-2.0
// Shared by the browser tests and the first-page measurement: find Debian's chromium,
// start `dreamdb serve` on 127.0.0.1 with a free port.
import { spawn, spawnSync } from "node:child_process";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
export const webRoot = join(root, "web", "dist");
export const dreamdbBin = process.env.DREAMDB_BIN || join(root, ".venv", "bin", "dreamdb");

/** The chromium executable: $CHROMIUM, else chromium or chromium-browser on PATH; null if none. */
export function findChromium() {
  if (process.env.CHROMIUM) return process.env.CHROMIUM;
  for (const name of ["chromium", "chromium-browser"]) {
    const r = spawnSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return null;
}

export const CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"];

/**
 * Starts `dreamdb serve --store URI --port 0` serving web/dist; resolves to
 * {url, proc} once it printed its address (spec/30 §1.1). The caller stops proc.
 */
export function startServer(storeUri, extraArgs = []) {
  const proc = spawn(dreamdbBin, ["serve", "--store", storeUri, "--port", "0", "--web-root", webRoot, ...extraArgs], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let err = "";
  proc.stderr.on("data", (d) => (err += d));
  return new Promise((ok, ko) => {
    let out = "";
    const timer = setTimeout(() => {
      proc.kill("SIGTERM");
      ko(new Error(`dreamdb serve printed no address in 20 s: ${out} ${err}`));
    }, 20000);
    proc.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/listening on (http:\/\/[^\s]+)/);
      if (m) {
        clearTimeout(timer);
        ok({ url: m[1].replace(/\/$/, ""), proc });
      }
    });
    proc.on("exit", (code) => {
      clearTimeout(timer);
      ko(new Error(`dreamdb serve exited ${code}: ${err}`));
    });
  });
}
