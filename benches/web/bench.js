// The page side of `cargo xtask bench`: the SDK, the plain-platform baselines and the
// pre-fill, exposed as `window.bench` for benches/run.mjs (which holds the plan, the clock
// for page loads and the statistics). Every figure is `performance.now()` in this page, or in
// the service worker for Workbox's own calls.

import init, { Terminal } from "/pkg/pos_terminal.js";

// src/forward_policy.rs DEFAULT_CONCURRENCY: the forwarder sends waves of this many requests
// (the bench leaves `forwardConcurrency` unset).
const SDK_CONCURRENCY = 3;

let wasm = null; // InitOutput: its `memory` is the module's WebAssembly.Memory
let initMs = null;
const terminals = new Map(); // database name → Terminal
const lastIds = new Map(); // database name → ids written by the last timed round

// ---------------------------------------------------------------------------------------
// IndexedDB, promise-shaped

const req = (r) =>
  new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });

const done = (tx) =>
  new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error || new Error("transaction aborted"));
  });

function openDb(name, upgrade) {
  const r = upgrade ? indexedDB.open(name, 1) : indexedDB.open(name);
  if (upgrade) r.onupgradeneeded = () => upgrade(r.result);
  return req(r);
}

async function deleteDb(name) {
  const r = indexedDB.deleteDatabase(name);
  r.onblocked = () => {};
  await req(r);
}

// ---------------------------------------------------------------------------------------
// Ids and sealing, as the SDK does them (used only to clone a record the SDK wrote)

const B32 = "abcdefghijklmnopqrstuvwxyz234567";

/** `pay_` + 26 base32 characters of 128 random bits, like `new_payment_id`. */
export function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  let out = "pay_";
  let buffer = 0;
  let bits = 0;
  for (const b of bytes) {
    buffer = ((buffer << 8) | b) & 0xffff;
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out += B32[(buffer >> bits) & 31];
    }
  }
  if (bits > 0) out += B32[(buffer << (5 - bits)) & 31];
  return out;
}

/** The data key of an SDK database, unwrapped with its non-extractable key (usable, not readable). */
async function sdkVault(conn) {
  const tx = conn.transaction(["keys"]);
  const keys = tx.objectStore("keys");
  const [kek, dek] = await Promise.all([req(keys.get("kek")), req(keys.get("dek"))]);
  const raw = await crypto.subtle.decrypt({ name: "AES-GCM", iv: dek.iv }, kek, dek.key);
  const key = await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
  new Uint8Array(raw).fill(0);
  return key;
}

/**
 * Associated data of a sealed payment: database | id | state | the record's own schema
 * version `v` (src/vault.rs `aad`, src/store.rs `seal_context`; SCHEMA_VERSION 2 today).
 */
const aad = (db, id, state, version) => new TextEncoder().encode(`${db}|${id}|${state}|${version}`);

// The sealed ledger of outstanding payments (src/limits.rs `Ledger`): key "ledger" in the
// `keys` store, sealed with the data key under `db|ledger|2` (LEDGER_ID in src/store/mod.rs,
// LEDGER_VERSION in src/store/ledger.rs), serde JSON of aggregates per backend
// `{ backends: { "<backend url or empty>": { count, amounts: { usd: n } } } }`; beside it one
// age key per outstanding payment, `["age", backend, storedAt, id]` → 1.
const LEDGER_ID = "ledger";
const LEDGER_VERSION = 2;
const ledgerAad = (db) => new TextEncoder().encode(`${db}|${LEDGER_ID}|${LEDGER_VERSION}`);
const ageKey = (backend, storedAt, id) => ["age", backend, storedAt, id];

/** `ledger` with one payment of `body` (sealed for its backend) added (+1) or taken out (-1). */
function ledgerApply(ledger, body, sign) {
  const b = body.backend_url ?? "";
  const t = (ledger.backends[b] ??= { count: 0, amounts: {} });
  t.count = Math.max(0, t.count + sign);
  t.amounts[body.currency] = Math.max(0, (t.amounts[body.currency] ?? 0) + sign * body.amount);
  if (t.amounts[body.currency] === 0) delete t.amounts[body.currency];
  if (t.count === 0) delete ledger.backends[b];
}

/** The ledger as the SDK last wrote it, or null when there is none (the SDK rebuilds it then). */
async function readLedger(conn, key, db) {
  const tx = conn.transaction(["keys"]);
  const bytes = await req(tx.objectStore("keys").get(LEDGER_ID));
  if (!bytes) return null;
  const plain = await open(key, ledgerAad(db), new Uint8Array(bytes));
  return JSON.parse(new TextDecoder().decode(plain));
}

const sealLedger = (key, db, ledger) => seal(key, ledgerAad(db), new TextEncoder().encode(JSON.stringify(ledger)));

async function seal(key, additionalData, plain) {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData }, key, plain));
  const out = new Uint8Array(12 + ct.length);
  out.set(iv);
  out.set(ct, 12);
  return out;
}

async function open(key, additionalData, sealed) {
  return new Uint8Array(
    await crypto.subtle.decrypt({ name: "AES-GCM", iv: sealed.subarray(0, 12), additionalData }, key, sealed.subarray(12)),
  );
}

// ---------------------------------------------------------------------------------------
// The SDK

function terminalOf(db) {
  const t = terminals.get(db);
  if (!t) throw new Error(`no terminal open on ${db}`);
  return t;
}

async function boot() {
  if (!wasm) {
    const t0 = performance.now();
    wasm = await init();
    initMs = performance.now() - t0;
  }
  return { initMs, memory: wasm.memory.buffer.byteLength };
}

function options(api, db, extra = {}) {
  return {
    ...extra,
    backendUrl: api,
    fetchConnectionToken: async () => {
      const res = await fetch(`${api}/v1/connection_tokens`, { method: "POST" });
      if (!res.ok) throw new Error(`connection token: HTTP ${res.status}`);
      return (await res.json()).secret;
    },
    databaseName: db,
    // The bench starts every drain itself; the page timer stays out of the way.
    forwardIntervalMs: 3_600_000,
    // No amount limits (none set for a currency means none); the count limit at its maximum.
    offline: { enabled: true, maxStoredPayments: 1_000_000 },
  };
}

/**
 * Terminal.create (timed) on `db`, then the SDK's in-page simulated reader connected when
 * `reader` is "simulated". Its card payload is `simulated:v1:<test card>` (4242…, approved),
 * which pos-sim accepts for a published test card under any payment id and does not check
 * for reuse: the pre-fill's copies and the baselines' requests are approved like the
 * original. (A pos-sim reader's payload is sealed for one payment id, amount, currency and
 * reader, and charged once: copies of it are refused 400/409.) `extra`: more options
 * (`forwardConcurrency` for the drain with latency).
 */
async function openTerminal(api, db, reader, extra) {
  const t0 = performance.now();
  const terminal = await Terminal.create(options(api, db, extra));
  const createMs = performance.now() - t0;
  if (reader) {
    if (reader !== "simulated") throw new Error(`openTerminal: unknown reader ${reader}`);
    const [found] = await terminal.discoverReaders({ method: "simulated" });
    await terminal.connectReader(found);
  }
  terminals.set(db, terminal);
  return { createMs, memory: wasm.memory.buffer.byteLength };
}

/**
 * Waits until the forwarding run that Terminal.create starts has finished (network status
 * known, not forwarding), so that it cannot pick up the payments the bench stores next.
 */
async function settle(db) {
  const terminal = terminalOf(db);
  for (let i = 0; i < 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
    const s = await terminal.offlineStatus();
    if (s.networkStatus !== "unknown" && !s.forwarding) {
      await new Promise((r) => setTimeout(r, 100));
      return s;
    }
  }
  throw new Error(`${db}: the start-up forwarding run did not finish within 10 s`);
}

async function closeTerminal(db) {
  const t = terminals.get(db);
  terminals.delete(db);
  if (t) await t.close();
}

/** `n` payments: collect (not timed), then processPayment under force_offline, timed until it resolved. */
async function sdkStore(db, n) {
  const terminal = terminalOf(db);
  const times = [];
  const ids = [];
  for (let i = 0; i < n; i++) {
    const collected = await terminal.collectPaymentMethod({ amount: 1234, currency: "usd", offlineBehavior: "force_offline" });
    const t0 = performance.now();
    const result = await terminal.processPayment(collected);
    times.push(performance.now() - t0);
    if (result.status !== "stored_offline") throw new Error(`processPayment: ${result.status}`);
    ids.push(result.id);
  }
  lastIds.set(db, ids);
  return times;
}

/**
 * One online payment (approved, through pos-sim), as a till does before an outage: it
 * fetches the connection token the SDK saves (sealed) for a service worker to forward with.
 * The simulated reader never asks for one, and force_offline stores send nothing.
 */
async function sdkOnline(db) {
  const terminal = terminalOf(db);
  const collected = await terminal.collectPaymentMethod({ amount: 1234, currency: "usd", offlineBehavior: "require_online" });
  const result = await terminal.processPayment(collected);
  if (result.status !== "succeeded" && result.status !== "requires_capture") throw new Error(`online payment: ${result.status}`);
}

/** One store with every IndexedDB call logged (benches/profile-store.mjs --trace wraps them). */
async function traceStore(db) {
  const terminal = terminalOf(db);
  const collected = await terminal.collectPaymentMethod({ amount: 1234, currency: "usd", offlineBehavior: "force_offline" });
  const log = (window.__idbLog ??= []);
  log.length = 0;
  const t0 = performance.now();
  window.__idbT0 = t0;
  await terminal.processPayment(collected);
  log.push(`${(performance.now() - t0).toFixed(2)} processPayment resolved`);
  return [...log];
}

/** Deletes what the last timed round wrote (below the store's API), so the count stays at its level. */
async function dropLast(db, store) {
  const conn = await openDb(db);
  try {
    const tx = conn.transaction([store], "readwrite");
    for (const id of lastIds.get(db) ?? []) tx.objectStore(store).delete(id);
    await done(tx);
    lastIds.delete(db);
  } finally {
    conn.close();
  }
}

/**
 * The SDK's side of `dropLast`: the round's records, their share of the ledger and their age
 * keys go in one transaction, so the ledger keeps summing exactly the records left (the
 * terminal is idle).
 */
async function sdkDropLast(db) {
  const ids = lastIds.get(db) ?? [];
  const conn = await openDb(db);
  try {
    const key = await sdkVault(conn);
    const ledger = await readLedger(conn, key, db);
    const read = conn.transaction(["payments"]);
    const records = await Promise.all(ids.map((id) => req(read.objectStore("payments").get(id))));
    const ages = [];
    for (const r of records) {
      if (!r || (r.state !== "pending" && r.state !== "forwarding")) continue;
      const body = JSON.parse(new TextDecoder().decode(await open(key, aad(db, r.id, r.state, r.v), r.sealed)));
      if (ledger) ledgerApply(ledger, body, -1);
      ages.push(ageKey(body.backend_url ?? "", r.storedAt, r.id));
    }
    const sealed = ledger ? await sealLedger(key, db, ledger) : null;
    const tx = conn.transaction(["payments", "keys"], "readwrite");
    for (const id of ids) tx.objectStore("payments").delete(id);
    for (const k of ages) tx.objectStore("keys").delete(k);
    if (sealed) tx.objectStore("keys").put(sealed, LEDGER_ID);
    await done(tx);
    lastIds.delete(db);
  } finally {
    conn.close();
  }
}
const baselineDropLast = (name) => dropLast(name, "records");

async function sdkPending(db) {
  return (await terminalOf(db).offlineStatus()).pendingCount;
}

/** Forwards everything pending; wasm memory before and after. */
async function sdkDrain(db) {
  const before = wasm.memory.buffer.byteLength;
  const t0 = performance.now();
  const report = await terminalOf(db).forwardStoredPayments();
  const ms = performance.now() - t0;
  return { ms, report, memoryBefore: before, memoryAfter: wasm.memory.buffer.byteLength };
}

/**
 * A record the SDK stored, opened with the database's own key: its clear fields, its sealed
 * body's bytes, and the backend request body the forwarder would send for it.
 */
const templates = new Map(); // database name → its template, read once (it outlives a drain)

async function sdkTemplate(db) {
  if (!templates.has(db)) templates.set(db, await readTemplate(db));
  return templates.get(db);
}

async function readTemplate(db) {
  const conn = await openDb(db);
  try {
    const key = await sdkVault(conn);
    const tx = conn.transaction(["payments"]);
    const [record] = await req(tx.objectStore("payments").index("state").getAll(IDBKeyRange.only("pending"), 1));
    if (!record) throw new Error(`${db} has no pending payment to clone`);
    const plain = await open(key, aad(db, record.id, record.state, record.v), record.sealed);
    const body = JSON.parse(new TextDecoder().decode(plain));
    const request = {
      id: record.id,
      amount: body.amount,
      currency: body.currency,
      capture_method: body.capture_method,
      card_payload: body.card_payload,
      card: body.card,
      reader_id: body.reader_id,
      offline: { stored_at: Math.floor(record.storedAt) },
      metadata: body.metadata,
    };
    return { record, plain, request };
  } finally {
    conn.close();
  }
}

/**
 * Test-only pre-fill: `count` copies of a record the SDK stored, each under a new id and
 * sealed again with the database's data key and its own associated data (database, id,
 * state, the record's schema version), written 500 per transaction below the SDK. Each
 * transaction also rewrites the sealed ledger with the copies added and puts their age keys,
 * as the SDK's own add does, so its limit checks and counts see them. The SDK cannot tell them from its own
 * records. Needs the terminal idle (no store or drain in flight): the ledger is read once.
 */
async function sdkPrefill(db, count) {
  const { record, plain } = await sdkTemplate(db);
  const body = JSON.parse(new TextDecoder().decode(plain));
  const conn = await openDb(db);
  try {
    const key = await sdkVault(conn);
    // No ledger: the SDK rebuilds it (and the age keys) from the records on its next write
    // (src/store/ledger.rs `apply_in`), so none is written here either.
    const ledger = await readLedger(conn, key, db);
    for (let done_ = 0; done_ < count; ) {
      const batch = Math.min(500, count - done_);
      const now = Date.now();
      const copies = await Promise.all(
        Array.from({ length: batch }, async () => {
          const id = newId();
          const sealed = await seal(key, aad(db, id, record.state, record.v), plain);
          return { ...record, id, storedAt: now, updatedAt: now, nextAttemptAt: now, sealed };
        }),
      );
      let sealedLedger = null;
      if (ledger) {
        for (let i = 0; i < copies.length; i++) ledgerApply(ledger, body, +1);
        sealedLedger = await sealLedger(key, db, ledger);
      }
      const tx = conn.transaction(["payments", "keys"], "readwrite");
      const store = tx.objectStore("payments");
      for (const c of copies) store.put(c);
      if (sealedLedger) {
        const keys = tx.objectStore("keys");
        keys.put(sealedLedger, LEDGER_ID);
        for (const c of copies) keys.put(1, ageKey(body.backend_url ?? "", c.storedAt, c.id));
      }
      await done(tx);
      done_ += batch;
    }
    return { sealedBytes: record.sealed.length, plainBytes: plain.length, ledger: !!ledger };
  } finally {
    conn.close();
  }
}

/** Payments the sealed ledger counts (null when there is none), to check it against the records. */
async function sdkLedgerCount(db) {
  const conn = await openDb(db);
  try {
    const ledger = await readLedger(conn, await sdkVault(conn), db);
    return ledger ? Object.values(ledger.backends).reduce((n, t) => n + t.count, 0) : null;
  } finally {
    conn.close();
  }
}

// ---------------------------------------------------------------------------------------
// Baselines in plain JS: (a) strict put of the same bytes, (b) WebCrypto seal + strict put

const baselines = new Map(); // database name → { conn, key, record, plain }

async function baselineOpen(name, sdkDb) {
  await deleteDb(name);
  const conn = await openDb(name, (db) => db.createObjectStore("records", { keyPath: "id" }));
  const key = await crypto.subtle.generateKey({ name: "AES-GCM", length: 256 }, false, ["encrypt", "decrypt"]);
  const { record, plain } = await sdkTemplate(sdkDb);
  baselines.set(name, { conn, key, record, plain });
  return { sealedBytes: record.sealed.length, plainBytes: plain.length };
}

function strictPut(conn, value) {
  const tx = conn.transaction(["records"], "readwrite", { durability: "strict" });
  tx.objectStore("records").put(value);
  return done(tx);
}

/** Fills a baseline store to `count` records of the SDK record's shape and size. */
async function baselineFill(name, count) {
  const { conn, record } = baselines.get(name);
  for (let n = 0; n < count; ) {
    const batch = Math.min(1000, count - n);
    const tx = conn.transaction(["records"], "readwrite");
    const store = tx.objectStore("records");
    for (let i = 0; i < batch; i++) {
      store.put({ ...record, id: newId(), sealed: crypto.getRandomValues(new Uint8Array(record.sealed.length)) });
    }
    await done(tx);
    n += batch;
  }
}

/** (a): the SDK record's clear fields and as many (already random) sealed bytes, one strict put each. */
async function plainPut(name, n) {
  const { conn, record } = baselines.get(name);
  const times = [];
  const ids = [];
  for (let i = 0; i < n; i++) {
    const value = { ...record, id: newId(), sealed: crypto.getRandomValues(new Uint8Array(record.sealed.length)) };
    const t0 = performance.now();
    await strictPut(conn, value);
    times.push(performance.now() - t0);
    ids.push(value.id);
  }
  lastIds.set(name, ids);
  return times;
}

/** (b): seal the SDK body's bytes with a non-extractable AES-GCM key, then one strict put. */
async function cryptoPut(name, n) {
  const { conn, key, record, plain } = baselines.get(name);
  const times = [];
  const ids = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const id = newId();
    const now = Date.now();
    const sealed = await seal(key, aad(name, id, "pending", record.v), plain);
    await strictPut(conn, { ...record, id, storedAt: now, updatedAt: now, nextAttemptAt: now, sealed });
    times.push(performance.now() - t0);
    ids.push(id);
  }
  lastIds.set(name, ids);
  return times;
}

// ---------------------------------------------------------------------------------------
// Requests to the backend: a plain fetch loop, and the Workbox service worker

async function token(api) {
  const res = await fetch(`${api}/v1/connection_tokens`, { method: "POST" });
  return (await res.json()).secret;
}

/** What every request to /v1/payments carries, plus a template body of the SDK's size. */
async function requestShape(api, sdkDb) {
  const { request } = await sdkTemplate(sdkDb);
  return {
    url: `${api}/v1/payments`,
    headers: { "Content-Type": "application/json", Authorization: `Bearer ${await token(api)}` },
    template: request,
  };
}

/** `n` requests, `concurrency` at a time, each awaited to its body like the forwarder does. */
async function fetchLoop(api, sdkDb, n, concurrency = SDK_CONCURRENCY) {
  const shape = await requestShape(api, sdkDb);
  const ids = Array.from({ length: n }, newId);
  let next = 0;
  let failures = 0;
  let firstFailure = null;
  const worker = async () => {
    while (next < ids.length) {
      const id = ids[next++];
      const res = await fetch(shape.url, {
        method: "POST",
        headers: { ...shape.headers, "Idempotency-Key": id },
        body: JSON.stringify({ ...shape.template, id }),
      });
      const answer = await res.json().catch(() => null);
      // Every request must be approved (the bench's bodies carry a simulated test card).
      if (!res.ok || !["succeeded", "requires_capture"].includes(answer?.status)) {
        if (failures++ === 0) firstFailure = `HTTP ${res.status} ${JSON.stringify(answer)}`;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  return { ms: performance.now() - t0, failures, firstFailure };
}

async function swReady() {
  const reg = await navigator.serviceWorker.register("sw.js", { scope: "./" });
  await navigator.serviceWorker.ready;
  if (!navigator.serviceWorker.controller) {
    await new Promise((resolve) => navigator.serviceWorker.addEventListener("controllerchange", resolve, { once: true }));
  }
  return reg.active.state;
}

function sw(msg) {
  return new Promise((resolve, reject) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (e) => (e.data.ok ? resolve(e.data.result) : reject(new Error(e.data.error)));
    navigator.serviceWorker.controller.postMessage(msg, [channel.port2]);
  });
}

/** Workbox pushRequest of `n` same-size JSON POSTs (timed one by one when `timed`). */
async function workboxPush(api, sdkDb, n, timed) {
  const shape = await requestShape(api, sdkDb);
  const times = [];
  // In chunks, so one message event never runs for minutes.
  for (let i = 0; i < n; i += 1000) {
    const ids = Array.from({ length: Math.min(1000, n - i) }, newId);
    times.push(...(await sw({ cmd: "push", timed, ids, ...shape })));
  }
  return times;
}

const workboxClear = () => sw({ cmd: "clear" });
const workboxReplay = () => sw({ cmd: "replay" });
const workboxPop = (n) => sw({ cmd: "pop", n });


window.bench = {
  sdkConcurrency: () => SDK_CONCURRENCY,
  boot,
  openTerminal,
  closeTerminal,
  settle,
  sdkStore,
  sdkOnline,
  traceStore,
  sdkDropLast,
  baselineDropLast,
  workboxPop,
  sdkPending,
  sdkDrain,
  sdkPrefill,
  sdkLedgerCount,
  baselineOpen,
  baselineFill,
  plainPut,
  cryptoPut,
  fetchLoop,
  swReady,
  workboxClear,
  workboxPush,
  workboxReplay,
  deleteDb,
};
window.benchLoaded = true;
