// A/B of the store figure: two packages served side by side (one pos-sim each, started as
// `cargo xtask bench` starts it but with `--pkg` pointing at each build), both driven in one
// headless Chromium, interleaved in rounds of 20, each beside a strict put of the same
// record. Prints the SDK's median and the ratio per package. Not part of `cargo xtask bench`.
//
//   node benches/ab-store.mjs "$POS_SIM_READY_OF_A" "$POS_SIM_READY_OF_B"   [ROUNDS=15]
//
// (each argument is the JSON a pos-sim prints after POS_SIM_READY)

import { createRequire } from "node:module";
import { mkdirSync, rmSync } from "node:fs";

const require = createRequire(import.meta.url);
const { chromium } = require("playwright-core");

const sims = process.argv.slice(2).map((s) => JSON.parse(s));
if (sims.length === 0) throw new Error("give one POS_SIM_READY JSON per package");
const rounds = Number(process.env.ROUNDS || 15);
const profile = `/tmp/ab-store-${process.pid}`;
rmSync(profile, { recursive: true, force: true });
mkdirSync(profile);
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run"],
});
try {
  const pages = [];
  for (const sim of sims) {
    const page = await context.newPage();
    page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
    await page.goto(`${sim.url}bench/index.html`);
    await page.waitForFunction(() => window.benchLoaded === true);
    const call = (fn, ...args) => page.evaluate(([f, a]) => window.bench[f](...a), [fn, args]);
    await call("boot");
    await call("deleteDb", "ab");
    await call("openTerminal", sim.api, "ab", "simulated");
    await call("settle", "ab");
    await call("sdkStore", "ab", 30); // warm-up
    await call("baselineOpen", "ab-plain", "ab");
    pages.push(call);
  }
  const res = pages.map(() => ({ sdk: [], plain: [] }));
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < pages.length; i++) {
      res[i].sdk.push(...(await pages[i]("sdkStore", "ab", 20)));
      res[i].plain.push(...(await pages[i]("plainPut", "ab-plain", 20)));
    }
  }
  const med = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  res.forEach((x, i) =>
    console.log(`${sims[i].url}: n=${x.sdk.length} SDK ${med(x.sdk).toFixed(2)} ms, strict put ${med(x.plain).toFixed(2)} ms, ratio ${(med(x.sdk) / med(x.plain)).toFixed(2)}x`),
  );
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
