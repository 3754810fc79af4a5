// Where a service worker's cold start goes, from a `sync` dispatched to the first
// /v1/payments request pos-sim records: the demo's worker (www/sw.js) with every fetch,
// IndexedDB, Web Lock, Cache Storage, clients and WebAssembly call timestamped (wall clock,
// the same clock as pos-sim's `first_seen`), N times, as the bench's cold start does
// (3 payments stored offline, the page's terminal closed, every worker stopped).
//
//   node benches/profile-sw.mjs --prepare target/bench/www-trace   # after `cargo xtask bench`
//   target/debug/pos-sim serve --port 0 --api-port 0 --readers 1 --tap-delay-ms 0 \
//     --db /tmp/trace-db --www target/bench/www-trace --pkg pkg     # prints POS_SIM_READY
//   POS_SIM_READY='{"url":"http://127.0.0.1:PORT/","api":"http://127.0.0.1:APIPORT"}' \
//     node benches/profile-sw.mjs [--n 5]

import { cpSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";

import { CHROMIUM, simCaller, simFromEnv, withBrowser } from "./profile-common.mjs";
import { syncOnce, until, watchWorkers } from "./sw-sync.mjs";

const { values: opt } = parseArgs({
  options: {
    n: { type: "string", default: "5" },
    // Writes a copy of target/bench/www whose sw.js records the calls, and exits.
    prepare: { type: "string" },
    chromium: { type: "string", default: CHROMIUM },
  },
});

/** Put after the worker's imports: wraps the calls a cold start makes and keeps marks. */
function tracer() {
  const marks = [];
  const mark = (what) => marks.push([Date.now(), what]);
  mark("script start");
  const wrap = (obj, name, label) => {
    const orig = obj[name];
    if (typeof orig !== "function") return;
    obj[name] = function (...a) {
      const what = `${label}.${name}${name === "transaction" ? ` ${JSON.stringify(a[0])} ${a[1] ?? ""}` : ""}`;
      mark(what);
      const r = orig.apply(this, a);
      if (r && typeof r.then === "function") r.then(() => mark(`  <- ${what}`), () => mark(`  <- (failed) ${what}`));
      if (r instanceof IDBRequest) r.addEventListener("success", () => mark(`  <- ${what}`));
      if (r instanceof IDBTransaction) r.addEventListener("complete", () => mark("  <- transaction complete"));
      return r;
    };
  };
  wrap(self, "fetch", "self");
  wrap(IDBFactory.prototype, "open", "indexedDB");
  wrap(IDBDatabase.prototype, "transaction", "db");
  for (const m of ["get", "getAll", "getAllKeys", "put", "add", "delete", "count", "openCursor"]) wrap(IDBObjectStore.prototype, m, "store");
  for (const m of ["get", "getAll", "getAllKeys", "count", "openCursor"]) wrap(IDBIndex.prototype, m, "index");
  wrap(IDBTransaction.prototype, "commit", "transaction");
  wrap(LockManager.prototype, "request", "locks");
  for (const m of ["decrypt", "encrypt", "unwrapKey"]) wrap(SubtleCrypto.prototype, m, "subtle");
  wrap(CacheStorage.prototype, "match", "caches");
  wrap(Clients.prototype, "matchAll", "clients");
  for (const m of ["instantiateStreaming", "instantiate"]) wrap(WebAssembly, m, "WebAssembly");
  self.addEventListener("sync", () => mark("sync event"));
  self.addEventListener("message", (event) => {
    if (event.data?.type === "trace-marks") event.ports[0]?.postMessage(marks.splice(0));
  });
}

if (opt.prepare) {
  const out = path.resolve(opt.prepare);
  rmSync(out, { recursive: true, force: true });
  cpSync("target/bench/www", out, { recursive: true });
  const sw = readFileSync(path.join(out, "sw.js"), "utf8");
  const at = sw.indexOf("\n", sw.indexOf("import init")) + 1;
  writeFileSync(path.join(out, "sw.js"), `${sw.slice(0, at)}(${tracer})();\n${sw.slice(at)}`);
  console.log(`wrote ${out} (its sw.js traced); serve it with pos-sim --www ${opt.prepare}`);
  process.exit(0);
}

const { site: SITE, api: API } = simFromEnv();
const simCall = simCaller(SITE);

await withBrowser("profile-sw", opt.chromium, async (context) => {
  // The demo page registers its worker (scope: the site's root).
  const demo = await context.newPage();
  await demo.goto(SITE);
  await until("the demo's worker active", () =>
    demo.evaluate(async () => !!(await navigator.serviceWorker.getRegistration("/"))?.active));
  await demo.close();
  const page = await context.newPage();
  page.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  const cdp = await context.newCDPSession(page);
  const workers = await watchWorkers(cdp);
  await page.goto(`${SITE}bench/index.html`);
  await page.waitForFunction(() => window.benchLoaded === true);
  const call = (fn, ...args) => page.evaluate(([f, a]) => window.bench[f](...a), [fn, args]);
  await call("boot");
  const reg = await until("the demo's worker registration", () =>
    workers.registrations.find((r) => r.scopeURL === SITE && !r.isDeleted));
  await simCall("POST", "/_sim/network", { down: false, latency_ms: 0 });
  const totals = [];
  for (let i = 0; i < Number(opt.n); i++) {
    const { t0, mine } = await syncOnce({
      cdp,
      workers,
      registrationId: reg.registrationId,
      origin: new URL(SITE).origin,
      call,
      simCall,
      api: API,
      reader: "simulated",
      db: `profile-sw-${i}`,
      payments: 3,
    });
    const first = Math.min(...mine.map((p) => p.first_seen)) - t0;
    const marks = await page.evaluate(async () => {
      const channel = new MessageChannel();
      // An untraced worker does not answer: no marks, pos-sim's time only.
      const got = new Promise((resolve) => {
        channel.port1.onmessage = (e) => resolve(e.data);
        setTimeout(() => resolve([]), 1000);
      });
      (await navigator.serviceWorker.getRegistration("/")).active.postMessage({ type: "trace-marks" }, [channel.port2]);
      return got;
    });
    const at = (what) => (marks.find(([, w]) => w.startsWith(what))?.[0] ?? NaN) - t0;
    const split = {
      script: at("script start"),
      syncEvent: at("sync event"),
      wasmReady: at("  <- WebAssembly."),
      firstFetch: at("self.fetch"),
      firstSeen: first,
    };
    totals.push(split);
    console.log(`--- run ${i}: ${JSON.stringify(split)}`);
    for (const [wall, what] of marks) if (wall - t0 <= first) console.log(`${String(wall - t0).padStart(5)} ms  ${what}`);
    console.log(`${String(first).padStart(5)} ms  pos-sim first_seen`);
  }
  const med = (k) => totals.map((t) => t[k]).sort((a, b) => a - b)[Math.floor(totals.length / 2)];
  console.log(`medians over ${totals.length} (ms after the dispatch): worker script runs ${med("script")}, sync event ${med("syncEvent")}, wasm ready ${med("wasmReady")}, first fetch() ${med("firstFetch")}, pos-sim records it ${med("firstSeen")}`);
});
