// Where `forwardStoredPayments` spends its time: the DevTools sampling profiler over one drain
// of N stored payments on the bench page (self time per function, wasm and JS; wasm names
// only if the package keeps its name section), with the same drain's wall time and a plain
// fetch loop's for comparison.
//
//   POS_SIM_READY='{"url":"http://127.0.0.1:PORT/","api":"http://127.0.0.1:APIPORT"}' \
//     node benches/profile-drain.mjs [--n 1000] [--out target/bench/drain.cpuprofile]

import { createRequire } from "node:module";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const { values: opt } = parseArgs({
  options: {
    n: { type: "string", default: "1000" },
    out: { type: "string", default: "target/bench/drain.cpuprofile" },
    // Without the profiler (timings only).
    quiet: { type: "boolean", default: false },
    chromium: { type: "string", default: process.env.CHROMIUM || "/usr/bin/chromium" },
  },
});
const sim = JSON.parse(process.env.POS_SIM_READY || "null");
if (!sim) throw new Error("POS_SIM_READY is not set");
const SITE = sim.url.endsWith("/") ? sim.url : `${sim.url}/`;
const API = sim.api.replace(/\/$/, "");
const N = Number(opt.n);


function summarize(prof) {
    const byId = new Map(prof.nodes.map((n) => [n.id, n]));
  const self = new Map();
  for (let i = 0; i < prof.samples.length; i++) {
    const dt = (prof.timeDeltas[i + 1] ?? 0) / 1000;
    const f = byId.get(prof.samples[i]).callFrame;
    const kind = f.url.endsWith(".wasm") || f.url.startsWith("wasm://") ? "wasm" : f.url ? "js" : "native";
    const key = `${kind}  ${f.functionName || "(anonymous)"}  ${f.url ? path.basename(f.url) : ""}`;
    self.set(key, (self.get(key) ?? 0) + dt);
  }
  const wall = (prof.endTime - prof.startTime) / 1000;
  const sum = (re) => [...self].filter(([k]) => re.test(k)).reduce((a, [, v]) => a + v, 0);
  console.log(`profile: ${wall.toFixed(0)} ms wall; idle ${sum(/\(idle\)/).toFixed(0)} ms, wasm ${sum(/^wasm/).toFixed(0)} ms, JS ${sum(/^js/).toFixed(0)} ms, native ${(sum(/^native/) - sum(/\(idle\)/)).toFixed(0)} ms`);
  console.log("top self time (µs per payment):");
  for (const [k, v] of [...self].sort((a, b) => b[1] - a[1]).slice(0, 45)) {
    console.log(`  ${((v * 1000) / N).toFixed(0).padStart(6)}  ${k.slice(0, 140)}`);
  }
}

const dir = path.resolve(`target/bench/profile-drain-${process.pid}`);
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });
const context = await chromium.launchPersistentContext(dir, {
  executablePath: opt.chromium,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
try {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && console.error(`console: ${m.text()}`));
  await page.goto(`${SITE}bench/index.html`);
  await page.waitForFunction(() => window.benchLoaded === true);
  const call = (fn, ...args) => page.evaluate(([f, a]) => window.bench[f](...a), [fn, args]);
  await call("boot");
  const db = "profile-drain";
  await call("deleteDb", db);
  await call("openTerminal", API, db, "simulated");
  await call("settle", db);
  await call("sdkStore", db, 1);
  await call("sdkPrefill", db, N - 1);
  const cdp = await context.newCDPSession(page);
  if (!opt.quiet) {
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
    await cdp.send("Profiler.start");
  }
  const d = await call("sdkDrain", db);
  console.log(`drain ${N}: ${d.ms.toFixed(0)} ms, ${(N / (d.ms / 1000)).toFixed(0)}/s, report ${JSON.stringify(d.report)}`);
  if (!opt.quiet) {
    const { profile: prof } = await cdp.send("Profiler.stop");
    writeFileSync(opt.out, JSON.stringify(prof));
    summarize(prof);
  }
  // The same number of requests from a plain fetch loop at the SDK's concurrency.
  await call("closeTerminal", db);
  if (!opt.quiet) await cdp.send("Profiler.start");
  const f = await call("fetchLoop", API, db, N);
  console.log(`plain fetch loop: ${f.ms.toFixed(0)} ms, ${(N / (f.ms / 1000)).toFixed(0)}/s, failures ${f.failures}`);
  if (!opt.quiet) summarize((await cdp.send("Profiler.stop")).profile);
} finally {
  await context.close();
  rmSync(dir, { recursive: true, force: true });
}
