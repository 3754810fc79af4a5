// One service-worker cold start as the bench measures it, shared by benches/run.mjs (the
// table's figure) and benches/profile-sw.mjs (the traced timeline): payments stored offline
// on a database, the page's terminal closed, every worker stopped (DevTools
// `ServiceWorker.stopAllWorkers`), then a real `sync` for that database dispatched through
// DevTools (`ServiceWorker.dispatchSyncEvent`, as tests/e2e/sw-forward.test.mjs does).

/** Polls `f` every 25 ms until it returns something truthy (10 s at most). */
export async function until(what, f) {
  for (let i = 0; i < 400; i++) {
    const v = await f();
    if (v) return v;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error(`${what} within 10 s`);
}

/** Service worker registrations and versions as DevTools reports them, kept up to date. */
export async function watchWorkers(cdp) {
  const registrations = [];
  const versions = new Map(); // versionId → runningStatus
  cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => registrations.push(...e.registrations));
  cdp.on("ServiceWorker.workerVersionUpdated", (e) => {
    for (const v of e.versions) versions.set(v.versionId, v.runningStatus);
  });
  await cdp.send("ServiceWorker.enable");
  return { registrations, versions };
}

/**
 * `payments` stored offline on `db` by the bench page (`call(fn, ...args)` runs
 * `window.bench[fn]`), forwarded by the worker of `registrationId` alone after a `sync`.
 * Returns when pos-sim has them all (`simCall(method, path)`), each sent once: the dispatch
 * time `t0` (wall clock) and pos-sim's records.
 */
export async function syncOnce({ cdp, workers, registrationId, origin, call, simCall, api, reader, db, payments }) {
  await call("deleteDb", db);
  await call("openTerminal", api, db, reader);
  await call("settle", db);
  // The worker forwards with the token the page saved: one online payment fetches it.
  await call("sdkOnline", db);
  await call("sdkStore", db, payments);
  // The drain must come from the worker alone: the page's terminal is closed.
  await call("closeTerminal", db);
  await cdp.send("ServiceWorker.stopAllWorkers");
  await until("every worker stopped", () => [...workers.versions.values()].every((s) => s === "stopped"));
  const before = new Set((await simCall("GET", "/_sim/payments")).map((p) => p.key));
  const t0 = Date.now();
  await cdp.send("ServiceWorker.dispatchSyncEvent", {
    origin,
    registrationId,
    tag: `pos-terminal-forward:${db}`,
    lastChance: false,
  });
  const mine = await until(`the worker's forwarding of ${db}`, async () => {
    const fresh = (await simCall("GET", "/_sim/payments")).filter((p) => !before.has(p.key));
    return fresh.length === payments ? fresh : null;
  });
  if (mine.some((p) => p.requests !== 1)) throw new Error(`SW cold start: ${db} not forwarded exactly once`);
  return { t0, mine };
}
