// sw.js — the demo POS's service worker (registered as a module: { type: "module" }).
//
// 1. Forwards stored payments with no page open, through the package's
//    `forwardStoredPayments` (the same Rust core the page's Terminal uses, with the backend
//    URL and token the page saved, sealed, in IndexedDB): on Background Sync (tag below),
//    when this worker starts, and when a page asks (message { type: "pos-forward" }).
//    Every forwarder takes the Web Lock "pos-terminal-forward": a page and this worker never
//    send the same payment at once.
// 2. Serves the POS with no network: the page, its modules, the package (JS + wasm), styles,
//    manifest and icons are precached at install under a versioned cache. Online, the network
//    answers (so a deploy shows at once); offline or after NETWORK_TIMEOUT_MS, the cache does
//    (and, after such a timeout, at once for a while: see `hungUntil`).
//
// Rules a service worker imposes: the package is imported statically (import() is refused
// here) and listeners are registered synchronously at top level. The wasm is initialised
// when the worker starts (each event's waitUntil awaits it), from the cached .wasm so a
// restart with no network works.

import init, { forwardStoredPayments } from "./pkg/pos_terminal.js";

/**
 * Bump whenever a shell file changes, the package included (a new package's JS must find its
 * own wasm in its own cache); a new version re-precaches and drops the old.
 */
const VERSION = "2026-11-27.12";
const CACHE_PREFIX = "pos-shell-";
const CACHE = `${CACHE_PREFIX}${VERSION}`;

/**
 * The Background Sync tag: "pos-terminal-forward" forwards the default database
 * ("pos-terminal"); "pos-terminal-forward:<databaseName>" forwards another one.
 */
const SYNC_TAG = "pos-terminal-forward";

const NETWORK_TIMEOUT_MS = 4000;

const here = (p) => new URL(p, self.location.href).href;
const ROOT = here("./");
const WASM_URL = here("./pkg/pos_terminal_bg.wasm");
const SHELL = [
  "./",
  "./ui.js",
  "./pos.js",
  "./sim-panel.js",
  "./format.js",
  "./fake-usb.js",
  "./style.css",
  "./manifest.webmanifest",
  "./icons/icon-192.png",
  "./icons/icon-512.png",
  "./icons/icon-maskable-512.png",
  "./pkg/pos_terminal.js",
  "./pkg/pos_terminal_bg.wasm",
].map(here);

// ---------------------------------------------------------------------------
// The package, initialised once per worker start

let initialised = null;

function ready() {
  initialised ??= (async () => {
    // After a restart with no network, only the precached .wasm is there to load. This
    // version's cache only: a new version's worker starts before its install has filled
    // it, and must not pair its JS with the previous version's wasm.
    const cached = await caches.match(WASM_URL, { cacheName: CACHE });
    await init({ module_or_path: cached ?? WASM_URL });
  })().catch((err) => {
    initialised = null; // the next event tries again
    throw err;
  });
  return initialised;
}

// Compiling starts with the worker, not with its first event: a worker started for a `sync`
// has the wasm ready sooner. A failure here is retried by the next event's ready().
ready().catch(() => {});

// ---------------------------------------------------------------------------
// Forwarding

/** The database a sync tag names, or undefined when the tag is not ours. */
function databaseOfTag(tag) {
  if (tag === SYNC_TAG) return null;
  if (tag.startsWith(`${SYNC_TAG}:`)) return tag.slice(SYNC_TAG.length + 1) || null;
  return undefined;
}

async function tellPages(message) {
  const pages = await self.clients.matchAll({ type: "window", includeUncontrolled: true });
  for (const page of pages) page.postMessage({ source: "pos-sw", version: VERSION, ...message });
}

function errorInfo(err) {
  return { code: err?.code ?? "error", message: err?.message ?? String(err) };
}

/** One forwarding run for `databaseName` (null: the default), reported to open pages. */
async function forward(databaseName, reason) {
  // Pages are told while the run starts, not before it; "finished" or "failed" follows it.
  let started = Promise.resolve();
  try {
    await ready();
    started = tellPages({ type: "forward-started", reason, databaseName }).catch(() => {});
    const report = await forwardStoredPayments(databaseName ? { databaseName } : undefined);
    await started;
    await tellPages({ type: "forward-finished", reason, databaseName, report });
    return report;
  } catch (err) {
    await started;
    await tellPages({ type: "forward-failed", reason, databaseName, error: errorInfo(err) });
    throw err;
  }
}

// Start-up: the first event this worker handles after starting also forwards the default
// database (a tablet whose POS tab was closed during an outage catches up here).
let startedUp = null;

function startUp(event) {
  startedUp ??= forward(null, "start-up").catch(() => {
    // Nothing saved yet, or the backend is still unreachable: sync and pages will retry.
  });
  event.waitUntil(startedUp);
}

self.addEventListener("sync", (event) => {
  const databaseName = databaseOfTag(event.tag);
  if (databaseName === undefined) return;
  // A rejection asks the browser to retry later (with no page open, too).
  event.waitUntil(
    forward(databaseName, event.lastChance ? "sync (last chance)" : "sync").then((report) => {
      if (report.remaining > 0) throw new Error(`${report.remaining} payment(s) still waiting`);
    }),
  );
});

self.addEventListener("message", (event) => {
  const data = event.data;
  if (data?.type === "pos-forward") {
    event.waitUntil(
      forward(data.databaseName ?? null, "page").then(
        (report) => event.ports[0]?.postMessage({ ok: true, report }),
        (err) => event.ports[0]?.postMessage({ ok: false, error: errorInfo(err) }),
      ),
    );
  } else if (data?.type === "pos-status") {
    event.ports[0]?.postMessage({ ok: true, version: VERSION });
    startUp(event);
  }
});

// ---------------------------------------------------------------------------
// Install, activate, offline shell

self.addEventListener("install", (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll(SHELL.map((url) => new Request(url, { cache: "reload" })));
      // Safe to take over at once: payments live in IndexedDB, not in this worker, and the
      // old worker's forwarding run holds the Web Lock until it ends.
      await self.skipWaiting();
    })(),
  );
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    (async () => {
      const names = await caches.keys();
      await Promise.all(names.filter((n) => n.startsWith(CACHE_PREFIX) && n !== CACHE).map((n) => caches.delete(n)));
      await self.clients.claim();
    })(),
  );
  startUp(event);
});

function withTimeout(promise, ms) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(Object.assign(new Error(`no answer in ${ms} ms`), { timedOut: true })), ms);
    promise.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

/**
 * Until when the network is taken as hung: a request that got no answer within
 * NETWORK_TIMEOUT_MS (a server or an uplink that accepts and never answers, unlike one that
 * refuses at once) makes the next shell requests go to the cache at once, or a page load
 * would wait that long for each layer of its module graph. A network answer clears it.
 */
let hungUntil = 0;
const HUNG_FOR_MS = 30_000;

async function networkFirst(request, key) {
  if (Date.now() < hungUntil) {
    const cached = await caches.match(key, { cacheName: CACHE });
    if (cached) {
      // Still asked, so that the first answer ends the cache-first spell.
      fetch(request).then(() => (hungUntil = 0), () => {});
      return cached;
    }
  }
  try {
    const response = await withTimeout(fetch(request), NETWORK_TIMEOUT_MS);
    hungUntil = 0;
    if (response.ok) return response;
    const cached = await caches.match(key, { cacheName: CACHE });
    return cached ?? response;
  } catch (err) {
    if (err?.timedOut) hungUntil = Date.now() + HUNG_FOR_MS;
    const cached = await caches.match(key, { cacheName: CACHE });
    if (cached) return cached;
    throw err;
  }
}

self.addEventListener("fetch", (event) => {
  const request = event.request;
  if (request.method !== "GET") return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  const path = url.origin + url.pathname;
  let key = null;
  if (request.mode === "navigate" && (path === ROOT || path === here("./index.html"))) key = ROOT;
  else if (SHELL.includes(path)) key = path;
  if (!key) return; // the simulator's /_sim/*, anything else: straight to the network
  event.respondWith(networkFirst(request, key));
  startUp(event);
});
