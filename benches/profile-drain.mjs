// Where `forwardStoredPayments` spends its time: the DevTools sampling profiler over one drain
// of N stored payments on the bench page (self time per function, wasm and JS; wasm names
// only if the package keeps its name section), then a plain fetch loop of as many requests
// at the SDK's concurrency, profiled the same way.
//
//   POS_SIM_READY='{"url":"http://127.0.0.1:PORT/","api":"http://127.0.0.1:APIPORT"}' \
//     node benches/profile-drain.mjs [--n 1000] [--quiet] [--out target/bench/drain.cpuprofile]
//
// (pos-sim started as for profile-store.mjs.) --quiet: timings only, no profiler.

import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { CHROMIUM, printSelfTimes, simFromEnv, withBrowser } from "./profile-common.mjs";

const { values: opt } = parseArgs({
  options: {
    n: { type: "string", default: "1000" },
    out: { type: "string", default: "target/bench/drain.cpuprofile" },
    quiet: { type: "boolean", default: false },
    chromium: { type: "string", default: CHROMIUM },
  },
});
const { site: SITE, api: API } = simFromEnv();
const N = Number(opt.n);
const perPayment = { per: N, unit: "µs per payment", scale: 1000, top: 45 };

await withBrowser("profile-drain", opt.chromium, async (context) => {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
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
  const profiled = async (what) => {
    if (opt.quiet) return { result: await what(), prof: null };
    await cdp.send("Profiler.enable");
    await cdp.send("Profiler.setSamplingInterval", { interval: 100 });
    await cdp.send("Profiler.start");
    const result = await what();
    return { result, prof: (await cdp.send("Profiler.stop")).profile };
  };

  const sdk = await profiled(() => call("sdkDrain", db));
  const d = sdk.result;
  console.log(`SDK drain of ${N}: ${d.ms.toFixed(0)} ms, ${(N / (d.ms / 1000)).toFixed(0)}/s, report ${JSON.stringify(d.report)}`);
  if (sdk.prof) {
    writeFileSync(opt.out, JSON.stringify(sdk.prof));
    printSelfTimes(sdk.prof, perPayment);
  }
  await call("closeTerminal", db);
  const loop = await profiled(() => call("fetchLoop", API, db, N));
  const f = loop.result;
  console.log(`plain fetch loop: ${f.ms.toFixed(0)} ms, ${(N / (f.ms / 1000)).toFixed(0)}/s, failures ${f.failures}`);
  if (loop.prof) printSelfTimes(loop.prof, perPayment);
});
