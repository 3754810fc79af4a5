// A team's existing service worker (its own caching, say) with pos-terminal's forwarding
// added: import the package statically, register listeners at top level, initialise the
// wasm inside waitUntil. Payments are forwarded with the backend URL and connection token
// the page saved (sealed) in IndexedDB, under the same Web Lock the page takes.
import init, { forwardStoredPayments } from "pos-terminal";
import type { ForwardReport } from "pos-terminal";
// Vite emits the package's .wasm with a hashed name and gives its URL here.
import wasmUrl from "pos-terminal/pos_terminal_bg.wasm?url";

declare const self: ServiceWorkerGlobalScope;

const FORWARD_SYNC_TAG = "pos-terminal-forward";
const WASM_CACHE = "pos-terminal-wasm";

/** Background Sync's event is Chromium-only and not in TypeScript's WebWorker library. */
interface SyncEvent extends ExtendableEvent {
  readonly tag: string;
  readonly lastChance: boolean;
}

function isSyncEvent(event: Event): event is SyncEvent {
  return "tag" in event && typeof event.tag === "string";
}

let ready: Promise<unknown> | null = null;

async function forward(): Promise<ForwardReport> {
  // A worker restarted with no network can only load the copy cached at install. A failed
  // start is tried again at the next event, not remembered.
  ready ??= caches
    .match(wasmUrl)
    .then((cached) => init({ module_or_path: cached ?? wasmUrl }))
    .catch((e: unknown) => {
      ready = null;
      throw e;
    });
  await ready;
  return forwardStoredPayments();
}

self.addEventListener("sync", (event: Event) => {
  if (!isSyncEvent(event) || event.tag !== FORWARD_SYNC_TAG) return;
  // Rejecting asks the browser to retry later, with or without a page open.
  event.waitUntil(
    forward().then((report) => {
      if (report.remaining > 0) throw new Error(`${report.remaining} payments still waiting`);
    }),
  );
});

self.addEventListener("install", (event: ExtendableEvent) => {
  event.waitUntil(
    caches
      .open(WASM_CACHE)
      .then((cache) => cache.add(wasmUrl))
      .then(() => self.skipWaiting()),
  );
});

self.addEventListener("activate", (event: ExtendableEvent) => {
  event.waitUntil(self.clients.claim());
});

// The team's own fetch handling stays as it was.
self.addEventListener("fetch", (event: FetchEvent) => {
  if (event.request.method !== "GET") return;
  event.respondWith(fetch(event.request));
});
