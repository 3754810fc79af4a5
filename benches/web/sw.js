// The Workbox baseline, inside a real service worker: `Queue.pushRequest` per payment and
// `replayRequests()` for a drain. esbuild bundles this file (with workbox-background-sync,
// NODE_ENV=production so Workbox's dev logging is compiled out) into the served bench/sw.js.
// The page drives it with messages: { cmd, ... } on a MessageChannel, answered on its port.

import { Queue } from "workbox-background-sync";

// Replays only when the bench asks: a `sync` fired by pushRequest's registerSync does nothing.
const queue = new Queue("pos-bench", { onSync: async () => {} });

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("message", (event) => {
  const port = event.ports[0];
  event.waitUntil(
    handle(event.data).then(
      (result) => port.postMessage({ ok: true, result }),
      (err) => port.postMessage({ ok: false, error: String(err?.stack || err) }),
    ),
  );
});

function request(url, headers, template, id) {
  return new Request(url, { method: "POST", headers: { ...headers, "Idempotency-Key": id }, body: JSON.stringify({ ...template, id }) });
}

/** Empties Workbox's own object store (same database, no version change). */
function clear() {
  return new Promise((resolve, reject) => {
    const open = indexedDB.open("workbox-background-sync");
    open.onerror = () => reject(open.error);
    open.onsuccess = () => {
      const db = open.result;
      if (!db.objectStoreNames.contains("requests")) {
        db.close();
        resolve();
        return;
      }
      const tx = db.transaction("requests", "readwrite");
      tx.objectStore("requests").clear();
      tx.oncomplete = () => {
        db.close();
        resolve();
      };
      tx.onerror = () => reject(tx.error);
    };
  });
}

async function handle(msg) {
  switch (msg.cmd) {
    case "clear":
      return clear();
    case "push": {
      // Each push timed alone; the Request is built before the clock starts.
      const times = [];
      if (!msg.timed) {
        // A pre-fill: 50 pushes at a time, each still its own Workbox transaction.
        for (let i = 0; i < msg.ids.length; i += 50) {
          const ids = msg.ids.slice(i, i + 50);
          await Promise.all(ids.map((id) => queue.pushRequest({ request: request(msg.url, msg.headers, msg.template, id) })));
        }
        return times;
      }
      for (const id of msg.ids) {
        const req = request(msg.url, msg.headers, msg.template, id);
        const t0 = performance.now();
        await queue.pushRequest({ request: req });
        times.push(performance.now() - t0);
      }
      return times;
    }
    case "pop": {
      // Takes back the newest entries (a timed round's), so the queue stays at its level.
      for (let i = 0; i < msg.n; i++) await queue.popRequest();
      return null;
    }
    case "replay": {
      const t0 = performance.now();
      await queue.replayRequests();
      return { ms: performance.now() - t0, left: (await queue.getAll()).length };
    }
    default:
      throw new Error(`unknown command ${msg.cmd}`);
  }
}
