// What the bench scripts share (run, profile-store, profile-drain, profile-sw): the pos-sim
// they are pointed at and its simulator API, a headless Chromium on a throwaway on-disk
// profile, and the self time per function of a DevTools CPU profile.

import { createRequire } from "node:module";
import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

export const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

/** The pos-sim of `POS_SIM_READY` (its printed line): the site's URL and the API's. */
export function simFromEnv() {
  const sim = JSON.parse(process.env.POS_SIM_READY || "null");
  if (!sim) throw new Error("POS_SIM_READY is not set");
  return { site: sim.url.endsWith("/") ? sim.url : `${sim.url}/`, api: sim.api.replace(/\/$/, "") };
}

/** `simCall(method, path, body?)`: pos-sim's simulator API at `site`, the JSON it answers. */
export function simCaller(site) {
  return async function simCall(method, p, body) {
    const res = await fetch(new URL(p.replace(/^\//, ""), site), {
      method,
      headers: body === undefined ? undefined : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!res.ok) throw new Error(`${method} ${p}: HTTP ${res.status}`);
    return res.json();
  };
}

/**
 * Runs `body(context)` in headless Chromium on a fresh on-disk profile (IndexedDB on disk,
 * as on a device), removed afterwards.
 */
export async function withBrowser(name, executablePath, body) {
  const dir = path.resolve(`target/bench/${name}-${process.pid}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const context = await chromium.launchPersistentContext(dir, {
    executablePath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
  });
  try {
    return await body(context);
  } finally {
    await context.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * A DevTools CPU profile summed per function: `self` maps "kind  name  file" (kind wasm, js or
 * native) to milliseconds; `wall`, and the totals of idle, wasm, JS and other native time.
 */
export function selfTimes(prof) {
  const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i + 1] ?? 0) / 1000;
    const f = byId.get(prof.samples[i]).callFrame;
    const kind = f.url.endsWith(".wasm") || f.url.startsWith("wasm://") ? "wasm" : f.url ? "js" : "native";
    const key = `${kind}  ${f.functionName || "(anonymous)"}  ${f.url ? path.basename(f.url) : ""}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const sum = (re) => [...self].filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);
  const idle = sum(/\(idle\)/);
  return {
    self,
    wall: (prof.endTime - prof.startTime) / 1000,
    idle,
    wasm: sum(/^wasm/),
    js: sum(/^js/),
    native: sum(/^native/) - idle,
  };
}

/** Prints `selfTimes(prof)`: the split, then the top functions' self time per `unit` of work. */
export function printSelfTimes(prof, { per, unit, scale = 1, top = 40 }) {
  const t = selfTimes(prof);
  console.log(`profile: ${t.wall.toFixed(0)} ms wall; idle ${t.idle.toFixed(0)} ms, wasm ${t.wasm.toFixed(0)} ms, JS ${t.js.toFixed(0)} ms, (program)/(garbage collector)/other native ${t.native.toFixed(0)} ms`);
  console.log(`top self time (${unit}):`);
  for (const [k, v] of [...t.self].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${((v * scale) / per).toFixed(scale === 1 ? 3 : 0).padStart(7)}  ${k.slice(0, 140)}`);
  }
}
