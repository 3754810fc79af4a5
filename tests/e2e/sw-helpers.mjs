// Helpers for the service-worker tests: wait for the worker, fire a real SyncEvent through
// the DevTools protocol, count what pos-sim received per key, and a TCP front for pos-sim's
// HTTP port that can be made unreachable (the page's origin goes away; readers and backend
// keep their own ports).

import net from "node:net";
import assert from "node:assert/strict";
import { before, after } from "node:test";
import { startSim, launchBrowser, simGet, eventually, WAIT_MS } from "./helpers.mjs";

export const SYNC_TAG = "pos-terminal-forward";

/**
 * For a describe block: pos-sim with one reader (plus `simOptions`) and a browser with a
 * persistent profile, started before its tests and stopped after. Returns { sim, browser }.
 */
export function simAndBrowser(simOptions = {}) {
  const env = { sim: null, browser: null };
  before(async () => {
    env.sim = await startSim({ readers: 1, ...simOptions });
    env.browser = await launchBrowser();
  });
  after(async () => {
    await env.browser?.close();
    await env.sim?.stop();
  });
  return env;
}

/** Waits until the page is controlled by an activated service worker. */
export async function waitControlled(page) {
  await page.waitForFunction(
    () => navigator.serviceWorker?.controller?.state === "activated",
    null,
    { timeout: WAIT_MS },
  );
}

/**
 * Dispatches a real `sync` event to the service worker of `origin` through the DevTools
 * protocol, from `target` (a page target, e.g. about:blank: no POS page needs to be open).
 */
export async function dispatchSync(context, target, origin, { tag = SYNC_TAG, lastChance = false } = {}) {
  const cdp = await context.newCDPSession(target);
  try {
    const registrations = [];
    cdp.on("ServiceWorker.workerRegistrationUpdated", (e) => registrations.push(...e.registrations));
    await cdp.send("ServiceWorker.enable");
    const scope = origin.endsWith("/") ? origin : `${origin}/`;
    const reg = await eventually(
      () => registrations.find((r) => r.scopeURL === scope && !r.isDeleted),
      `a service worker registration for ${scope}`,
    );
    await cdp.send("ServiceWorker.dispatchSyncEvent", {
      origin: new URL(scope).origin,
      registrationId: reg.registrationId,
      tag,
      lastChance,
    });
  } finally {
    await cdp.detach().catch(() => {});
  }
}

/** pos-sim's payments for `ids`: { id: requests } (missing ids are absent). */
export async function requestsByKey(sim, ids) {
  const all = await simGet(sim, "/_sim/payments");
  const mine = {};
  for (const p of all) if (ids.includes(p.key)) mine[p.key] = p.requests;
  return mine;
}

/** Waits until pos-sim has every id, then checks each key was requested exactly once. */
export async function assertEachOnce(sim, ids, message) {
  const got = await eventually(async () => {
    const r = await requestsByKey(sim, ids);
    return Object.keys(r).length === ids.length ? r : null;
  }, `${message}: pos-sim receives all ${ids.length} payments`);
  for (const id of ids) assert.equal(got[id], 1, `${message}: ${id} requested once (got ${got[id]})`);
}

/** Stored payments as the SDK in the page sees them: { id: state }. */
export function storedStates(page) {
  return page.evaluate(async () => {
    const list = await window.posDemo.terminal.listStoredPayments();
    return Object.fromEntries(list.map((p) => [p.id, p.state]));
  });
}

/**
 * A TCP front on an ephemeral port for `target` (host:port). `down()` resets every open
 * connection and refuses new ones (connection refused); `up()` listens again on the same port.
 */
export async function startFront(targetUrl) {
  const target = new URL(targetUrl);
  const sockets = new Set();
  let server = null;
  let port = 0;
  // Hanging: connections are accepted and held, never answered (a frozen server, a
  // black-holed uplink), unlike `down`, which refuses them.
  let hanging = false;
  const held = new Set();
  const listen = () =>
    new Promise((resolve, reject) => {
      server = net.createServer((client) => {
        if (hanging) {
          held.add(client);
          client.on("error", () => {});
          client.on("close", () => held.delete(client));
          return;
        }
        const upstream = net.connect(Number(target.port), target.hostname);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on("close", () => sockets.delete(s));
          s.on("error", () => {
            client.destroy();
            upstream.destroy();
          });
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => {
        port = server.address().port;
        resolve();
      });
    });
  await listen();
  return {
    get url() {
      return `http://127.0.0.1:${port}/`;
    },
    async down() {
      await new Promise((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.resetAndDestroy?.() ?? s.destroy();
      });
    },
    up: listen,
    /** Holds every new connection unanswered; the open ones are cut. */
    hang() {
      hanging = true;
      for (const s of sockets) s.destroy();
    },
    /** Answers again; the held connections are cut, as a frozen server that comes back. */
    unhang() {
      hanging = false;
      for (const s of held) s.destroy();
    },
    async close() {
      this.unhang();
      if (server.listening) await this.down();
    },
  };
}
