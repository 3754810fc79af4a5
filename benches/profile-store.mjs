// Where `processPayment` under force_offline spends its time: the Chrome DevTools protocol
// sampling profiler (playwright's CDPSession) over N stores on the bench page, self time
// summed per function (wasm functions keep their Rust names only if the wasm has a name
// section; `cargo xtask build` strips it, so build with names for readable output), plus
// the wall time split into JS/wasm running vs. waiting (idle: IndexedDB, the commit).
//
//   POS_SIM_READY='{"url":"http://127.0.0.1:PORT/","api":"http://127.0.0.1:APIPORT"}' \
//     node benches/profile-store.mjs [--n 300] [--out target/bench/store.cpuprofile]
//
// (pos-sim started as `cargo xtask bench` does: serve --www target/bench/www --pkg pkg ...)

import { writeFileSync } from "node:fs";
import { parseArgs } from "node:util";

import { CHROMIUM, printSelfTimes, simFromEnv, withBrowser } from "./profile-common.mjs";

const { values: opt } = parseArgs({
  options: {
    n: { type: "string", default: "300" },
    out: { type: "string", default: "target/bench/store.cpuprofile" },
    // Also log every IndexedDB call made during one processPayment (no profiler).
    trace: { type: "boolean", default: false },
    chromium: { type: "string", default: CHROMIUM },
  },
});
const { site: SITE, api: API } = simFromEnv();
const N = Number(opt.n);

await withBrowser("profile-store", opt.chromium, async (context) => {
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  page.on("console", (m) => m.type() === "error" && console.error(`console: ${m.text()}`));
  await page.goto(`${SITE}bench/index.html`);
  await page.waitForFunction(() => window.benchLoaded === true);
  const call = (fn, ...args) => page.evaluate(([f, a]) => window.bench[f](...a), [fn, args]);
  await call("boot");
  await call("deleteDb", "profile-store");
  await call("openTerminal", API, "profile-store", "simulated");
  await call("settle", "profile-store");
  await call("sdkStore", "profile-store", 30); // warm-up
  if (opt.trace) {
    await page.evaluate(() => {
      const at = () => (performance.now() - (window.__idbT0 ?? 0)).toFixed(2);
      const push = (line) => (window.__idbLog ??= []).push(line);
      const wrap = (proto, name, label) => {
        const orig = proto[name];
        proto[name] = function (...a) {
          const extra = name === "transaction" ? ` ${JSON.stringify(a[0])} ${a[1] ?? ""} ${JSON.stringify(a[2] ?? {})}` : "";
          push(`${at()} ${label}.${name}${extra}`);
          const r = orig.apply(this, a);
          if (r instanceof IDBRequest) r.addEventListener("success", () => push(`${at()}   <- ${label}.${name}`));
          if (r instanceof IDBTransaction) r.addEventListener("complete", () => push(`${at()}   <- tx complete`));
          return r;
        };
      };
      wrap(IDBDatabase.prototype, "transaction", "db");
      for (const m of ["get", "getAll", "getAllKeys", "put", "add", "delete", "count", "openCursor"]) wrap(IDBObjectStore.prototype, m, "store");
      for (const m of ["get", "getAll", "getAllKeys", "count", "openCursor"]) wrap(IDBIndex.prototype, m, "index");
      wrap(IDBTransaction.prototype, "commit", "tx");
    });
    const traced = await page.evaluate(async () => window.bench.traceStore("profile-store"));
    console.log(traced.join("\n"));
  }
  const cdp = await context.newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 50 });
  await cdp.send("Profiler.start");
  const times = await call("sdkStore", "profile-store", N);
  const { profile: prof } = await cdp.send("Profiler.stop");
  writeFileSync(opt.out, JSON.stringify(prof));

  times.sort((a, b) => a - b);
  const total = times.reduce((a, b) => a + b, 0);
  console.log(`processPayment ×${N}: median ${times[Math.floor(N / 2)].toFixed(2)} ms, total ${total.toFixed(0)} ms`);

  printSelfTimes(prof, { per: N, unit: "ms per payment" });
  {
    // Without the profiler: the SDK's median beside a strict put of the same record, interleaved.
    await call("baselineOpen", "profile-plain", "profile-store");
    const sdk = [];
    const plain = [];
    for (let r = 0; r < 10; r++) {
      sdk.push(...(await call("sdkStore", "profile-store", 20)));
      plain.push(...(await call("plainPut", "profile-plain", 20)));
    }
    const med = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
    console.log(`no profiler, n=${sdk.length}: SDK median ${med(sdk).toFixed(2)} ms, strict put ${med(plain).toFixed(2)} ms, ratio ${(med(sdk) / med(plain)).toFixed(2)}×`);
  }
});
