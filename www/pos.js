// pos.js — the part of this demo to copy: everything that talks to the pos-terminal SDK.
//
// No page markup here. The page (ui.js) calls this small API and gets the SDK's events back:
//
//   const pos = new Pos({ backendUrl, offline }, { onNetworkStatusChange, …, onTerminalReady });
//   await pos.start();                       // load the wasm, Terminal.create
//   const readers = await pos.discover(urls);
//   await pos.connect(readers[0]);
//   const result = await pos.pay({ amount: 1250, currency: "usd" });   // collect + process
//   // on a rejection, pos.held is the collected payment when processPayment may be retried:
//   await pos.retry();                       // same payment, same id: never charged twice
//
// It also keeps the terminal working across the back/forward cache: closed on `pagehide`,
// created again (and the reader reconnected) on a restored `pageshow`.
//
// And it wires the service worker (www/sw.js) that forwards stored payments with no page
// open: `settings.serviceWorker` is its URL; the page registers the Background Sync tag
// FORWARD_SYNC_TAG whenever a payment is stored offline and on `online`. Where Background
// Sync is missing (Firefox, Safari) nothing is lost: the Terminal forwards from the page on
// load, on `online` and on its timer. Both take the SDK's Web Lock, so never at once.

// Beside this file, so the demo also works when served under a sub-path.
const SDK_URL = new URL("./pkg/pos_terminal.js", import.meta.url).href;

/** The largest amount the SDK accepts, in minor units (`invalid_amount` above it). */
export const MAX_AMOUNT = 99_999_999;

/** Rejections of processPayment after which the SDK no longer holds the collected payment. */
const FINAL_PROCESS_ERRORS = new Set(["card_declined", "payment_not_collected", "terminal_closed", "invalid_argument"]);

/** Offline limits used when the caller gives none (minor units per currency). */
export const DEFAULT_OFFLINE = {
  enabled: true,
  transactionLimit: { usd: 50_000, eur: 50_000, gbp: 50_000, cad: 50_000 },
  storedAmountLimit: { usd: 500_000, eur: 500_000, gbp: 500_000, cad: 500_000 },
  maxStoredPayments: 500,
};

/** Every SDK rejection is an Error with a stable `code` (and `declineCode` for declines). */
export function errorInfo(err) {
  if (err && typeof err === "object") {
    return {
      code: err.code ? String(err.code) : "error",
      message: err.message ? String(err.message) : String(err),
      declineCode: err.declineCode ?? null,
    };
  }
  return { code: "error", message: String(err), declineCode: null };
}

/**
 * The Background Sync tag www/sw.js forwards on: this for the default database,
 * `${FORWARD_SYNC_TAG}:${databaseName}` for another one.
 */
export const FORWARD_SYNC_TAG = "pos-terminal-forward";

export function forwardSyncTag(databaseName) {
  return databaseName ? `${FORWARD_SYNC_TAG}:${databaseName}` : FORWARD_SYNC_TAG;
}

function codedError(code, message) {
  return Object.assign(new Error(message), { code });
}

export class Pos {
  #settings;
  #handlers;
  #sdk = null;
  #terminal = null;
  #generation = 0; // callbacks of a closed terminal are ignored
  #reader = null; // the connected reader
  #lost = null; // the reader lost unexpectedly, which the SDK reconnects to by itself
  #resumeReader = null; // the reader to reconnect after a back/forward-cache restore
  #held = null; // a collected payment processPayment may be retried with
  #collect = null; // null | { started: boolean, cancelRequested: boolean }
  #lifecycleBound = false;
  #registration = null; // the service worker's registration, once registered

  /**
   * @param settings { backendUrl, databaseName?, requestTimeoutMs?, forwardIntervalMs?, offline?,
   *   offlineStorage? ("sdk" | "reader"),
   *   serviceWorker? (its URL, e.g. "/sw.js") }
   * @param handlers the SDK's callbacks (onNetworkStatusChange, onOfflineStatusChange,
   *   onPaymentForwarded, onForwardingFailure, onUnexpectedReaderDisconnect,
   *   onConnectionStatusChange, onPaymentStatusChange), plus
   *   onTerminalReady(terminal, { restored }), onWarning(what, error),
   *   onServiceWorkerState({ state, controlled, backgroundSync }) and
   *   onServiceWorkerMessage(message) (the worker's forward-started/-finished/-failed).
   */
  constructor(settings, handlers = {}) {
    this.#settings = settings;
    this.#handlers = handlers;
  }

  get terminal() {
    return this.#terminal;
  }

  get reader() {
    return this.#reader;
  }

  /** The collected payment that processPayment may be retried with, or null. */
  get held() {
    return this.#held;
  }

  /** Loads the SDK and creates the terminal. Rejects with a coded error the page can show. */
  async start() {
    try {
      this.#sdk = await import(SDK_URL);
      await this.#sdk.default();
    } catch (err) {
      throw Object.assign(codedError("sdk_unavailable", `the payment SDK could not be loaded from ${SDK_URL}: ${err?.message || err}`), { cause: err });
    }
    await this.#create();
    if (!this.#lifecycleBound) {
      this.#lifecycleBound = true;
      window.addEventListener("pagehide", () => this.#suspend());
      window.addEventListener("pageshow", (event) => {
        if (event.persisted) this.#resume();
      });
      window.addEventListener("online", () => this.#requestBackgroundForward());
    }
    this.#handlers.onTerminalReady?.(this.#terminal, { restored: false });
    if (this.#settings.serviceWorker) {
      // Not awaited: the till works without it; its state is reported as it changes.
      this.#registerServiceWorker(this.#settings.serviceWorker).catch((err) => {
        this.#handlers.onServiceWorkerState?.({ state: "error", controlled: false, backgroundSync: false, error: errorInfo(err) });
      });
    }
  }

  // -------------------------------------------------------------------------
  // Service worker

  async #registerServiceWorker(url) {
    const h = this.#handlers;
    if (!("serviceWorker" in navigator)) {
      h.onServiceWorkerState?.({ state: "unsupported", controlled: false, backgroundSync: false });
      return;
    }
    const container = navigator.serviceWorker;
    container.addEventListener("message", (event) => {
      if (event.data?.source === "pos-sw") h.onServiceWorkerMessage?.(event.data);
    });
    // A module worker: it imports the package statically (import() is refused in workers).
    const registration = await container.register(url, { type: "module" });
    this.#registration = registration;
    const report = () => {
      const state = registration.active ? "active" : registration.installing || registration.waiting ? "installing" : "none";
      h.onServiceWorkerState?.({ state, controlled: !!container.controller, backgroundSync: "sync" in registration });
    };
    registration.addEventListener("updatefound", () => {
      report();
      registration.installing?.addEventListener("statechange", report);
    });
    registration.installing?.addEventListener("statechange", report);
    container.addEventListener("controllerchange", report);
    report();
    // Payments stored before the worker existed (or while it was being replaced).
    await this.#requestBackgroundForward();
  }

  /**
   * Asks the browser to run the worker's forwarding when it is online: now if it is, and
   * again later (with no page open too) while the worker's run fails. Without Background
   * Sync this does nothing: the page's Terminal keeps forwarding on its own.
   */
  async #requestBackgroundForward() {
    if (!this.#registration || !("sync" in this.#registration)) return false;
    // sync.register needs an active worker: on a fresh profile the worker is still installing
    // right after register(), so wait until it is active (it forwards at activation anyway).
    const registration = await navigator.serviceWorker.ready;
    try {
      await registration.sync.register(forwardSyncTag(this.#settings.databaseName));
      return true;
    } catch (err) {
      this.#handlers.onWarning?.("Background Sync registration failed", err);
      return false;
    }
  }

  /** Has the service worker forward now (message); resolves with its ForwardReport. */
  async forwardInWorker() {
    const registration = this.#registration ?? (await navigator.serviceWorker?.ready);
    const worker = registration?.active;
    if (!worker) throw codedError("service_worker_unavailable", "no active service worker");
    const channel = new MessageChannel();
    const answer = new Promise((resolve, reject) => {
      channel.port1.onmessage = ({ data }) =>
        data.ok ? resolve(data.report) : reject(codedError(data.error.code, data.error.message));
    });
    worker.postMessage({ type: "pos-forward", databaseName: this.#settings.databaseName ?? null }, [channel.port2]);
    return answer;
  }

  async #create() {
    const generation = ++this.#generation;
    const terminal = await this.#sdk.Terminal.create(this.#options(generation));
    if (generation !== this.#generation) {
      // The page was hidden again while the terminal was being created.
      await terminal.close();
      return null;
    }
    this.#terminal = terminal;
    return terminal;
  }

  /** TerminalOptions for Terminal.create; callbacks of an older terminal are dropped. */
  #options(generation) {
    const { backendUrl, databaseName, requestTimeoutMs, forwardIntervalMs, offline, offlineStorage } = this.#settings;
    const h = this.#handlers;
    const current = (fn) => (arg) => {
      if (generation === this.#generation) fn(arg);
    };
    const options = {
      backendUrl,
      // The SDK calls this whenever it needs a connection token (start-up, expiry, a 401).
      // In production it must go through YOUR server: the page POSTs to its own origin
      // (e.g. /connection_token); your server, which holds the secret API key, asks the
      // payments backend for a connection token and returns only that token. Never put a
      // secret API key in the page. (pos-sim's backend hands tokens out without a key, so
      // this demo asks it directly.)
      fetchConnectionToken: async () => {
        const res = await fetch(`${backendUrl}/v1/connection_tokens`, { method: "POST" });
        if (!res.ok) throw new Error(`connection token request failed: HTTP ${res.status}`);
        return (await res.json()).secret;
      },
      offline: offline ?? DEFAULT_OFFLINE,
      // Which agent stores a payment when neither this device nor the reader reaches the
      // backend: "sdk" (this browser, the default) or "reader" (a reader that can store).
      offlineStorage: offlineStorage ?? "sdk",
      onNetworkStatusChange: current((s) => h.onNetworkStatusChange?.(s)),
      onOfflineStatusChange: current((s) => h.onOfflineStatusChange?.(s)),
      onPaymentForwarded: current((p) => h.onPaymentForwarded?.(p)),
      onForwardingFailure: current((f) => h.onForwardingFailure?.(f)),
      onUnexpectedReaderDisconnect: current((e) => {
        this.#lost = this.#reader ?? this.#lost;
        this.#reader = null;
        h.onUnexpectedReaderDisconnect?.(e);
      }),
      onConnectionStatusChange: current((s) => {
        // "not_connected" comes before onUnexpectedReaderDisconnect: remember the reader here,
        // so it is known again when the SDK reconnects by itself (disconnect() forgets it).
        if (s === "not_connected") {
          this.#lost = this.#reader ?? this.#lost;
          this.#reader = null;
        }
        if (s === "connected" && !this.#reader) this.#reader = this.#lost;
        h.onConnectionStatusChange?.(s);
      }),
      onPaymentStatusChange: current((s) => h.onPaymentStatusChange?.(s)),
    };
    if (databaseName) options.databaseName = databaseName;
    if (requestTimeoutMs) options.requestTimeoutMs = requestTimeoutMs;
    if (forwardIntervalMs) options.forwardIntervalMs = forwardIntervalMs;
    return options;
  }

  #require() {
    if (!this.#terminal) throw codedError("terminal_closed", "the terminal is not running");
    return this.#terminal;
  }

  // -------------------------------------------------------------------------
  // Readers

  async discover(urls) {
    return (await this.#require().discoverReaders({ method: "websocket", urls })) || [];
  }

  /** `{ method: "usb" }` (from a click: the browser's chooser) or `{ method: "simulated" }`. */
  async discoverWith(config) {
    return (await this.#require().discoverReaders(config)) || [];
  }

  /**
   * What the SDK's in-page simulated reader (`{ method: "simulated" }`) presents from now on:
   * `{ testCardNumber, entryMode, … }` (SimulatorConfiguration). Simulator only.
   */
  setSimulatorConfiguration(config) {
    this.#require().setSimulatorConfiguration(config);
  }

  /** `options.takeOver`: take a reader another POS holds (`status: "in_use"`, `reader_busy`). */
  async connect(reader, options = {}) {
    this.#lost = null; // a reader lost before is not the one being connected
    const connected = await this.#require().connectReader(reader, options);
    this.#reader = connected || reader;
    return this.#reader;
  }

  async disconnect() {
    await this.#require().disconnectReader();
    this.#reader = null;
    this.#lost = null;
  }

  // -------------------------------------------------------------------------
  // Payments

  /**
   * Shows the sale on the reader, collects a card and processes the payment.
   * `onStep("collect")` when the reader asks for the card, `onStep("process", collected)`
   * once a card was read. Resolves with the PaymentResult; on a rejection, `held` says
   * whether `retry()` may process the same payment again.
   */
  async pay({ amount, currency, offlineBehavior = "prefer_online", metadata = {} }, onStep = () => {}) {
    const terminal = this.#require();
    this.#held = null; // a new sale replaces a payment left for retry
    this.#collect = { started: false, cancelRequested: false };
    let displayed = false;
    try {
      try {
        await terminal.setReaderDisplay({ lineItems: [{ description: "Sale", amount, quantity: 1 }], tax: 0, total: amount, currency });
        displayed = true;
      } catch (err) {
        // The reader's screen is a convenience; collect reports the real problem if any.
        this.#handlers.onWarning?.("setReaderDisplay failed", err);
      }
      if (this.#collect.cancelRequested) throw codedError("collect_canceled", "Canceled before the card was requested");
      onStep("collect");
      this.#collect.started = true;
      const collected = await terminal.collectPaymentMethod({ amount, currency, offlineBehavior, captureMethod: "automatic", metadata });
      this.#collect = null;
      return await this.#process(terminal, collected, onStep);
    } finally {
      this.#collect = null;
      if (displayed) await this.#clearDisplay(terminal);
    }
  }

  /** Processes the held payment again: same collected payment, same id, charged at most once. */
  async retry() {
    const collected = this.#held;
    if (!collected) throw codedError("payment_not_collected", "there is no payment to retry");
    return this.#process(this.#require(), collected, () => {});
  }

  /**
   * Forgets the held payment (the cashier chose not to retry it) and returns it.
   *
   * This does NOT cancel it, and the SDK has no call that does. After
   * `payment_outcome_unknown` the backend may already have charged it, and the SDK keeps
   * its intent record: it sends it again under the same id about 5 minutes later and reports
   * the outcome through onPaymentForwarded / onForwardingFailure. So never charge that sale
   * again with another payment: keep showing the payment until its outcome arrives.
   */
  discardHeld() {
    const held = this.#held;
    this.#held = null;
    return held;
  }

  async #process(terminal, collected, onStep) {
    this.#held = null;
    onStep("process", collected);
    try {
      const result = await terminal.processPayment(collected);
      // Lets the service worker send it when the backend is back, even with this page closed.
      if (result.status === "stored_offline") this.#requestBackgroundForward();
      return result;
    } catch (err) {
      // The SDK keeps the payment after any non-final answer (payment_outcome_unknown above
      // all): processing it again reuses its id, which the backend deduplicates on.
      if (!FINAL_PROCESS_ERRORS.has(errorInfo(err).code)) this.#held = collected;
      throw err;
    }
  }

  async #clearDisplay(terminal) {
    // Back to the reader's idle screen before the next sale (bounded: never blocks the till).
    await Promise.race([
      terminal.clearReaderDisplay().catch((err) => this.#handlers.onWarning?.("clearReaderDisplay failed", err)),
      new Promise((r) => setTimeout(r, 3000)),
    ]);
  }

  /** Cancels the payment being collected; before the card was requested, pay() stops itself. */
  async cancel() {
    if (!this.#collect) return;
    if (!this.#collect.started) {
      this.#collect.cancelRequested = true;
      return;
    }
    await this.#require().cancelCollectPaymentMethod();
  }

  // -------------------------------------------------------------------------
  // Offline store

  forward() {
    return this.#require().forwardStoredPayments();
  }

  /**
   * The stored payments and the offline status, read together. The list includes `intent`
   * records (online attempts in flight, or whose outcome is unknown: sent again under the
   * same id once 5 minutes old), which listStoredPayments() leaves out unless asked for.
   */
  async stored() {
    const terminal = this.#require();
    const [list, intents, status] = await Promise.all([
      terminal.listStoredPayments(),
      terminal.listStoredPayments({ state: "intent" }),
      terminal.offlineStatus(),
    ]);
    return { list: [...(list || []), ...(intents || [])], status };
  }

  // -------------------------------------------------------------------------
  // Back/forward cache: a page in the cache keeps no socket open and no lock held.

  #suspend() {
    const terminal = this.#terminal;
    if (!terminal) return;
    this.#resumeReader = this.#reader;
    this.#terminal = null;
    this.#reader = null;
    this.#held = null; // the SDK holds collected payments in memory only; close() drops them
    this.#generation += 1;
    // close() also disconnects the reader and stops the forwarding timer; the data stays stored.
    terminal.close().catch((err) => this.#handlers.onWarning?.("close failed", err));
  }

  async #resume() {
    if (this.#terminal || !this.#sdk) return;
    const reader = this.#resumeReader;
    this.#resumeReader = null;
    try {
      const terminal = await this.#create();
      if (!terminal) return;
      if (reader) {
        try {
          await this.connect(reader);
        } catch (err) {
          this.#handlers.onWarning?.("reconnecting the reader failed", err);
        }
      }
      this.#handlers.onTerminalReady?.(terminal, { restored: true });
    } catch (err) {
      this.#handlers.onWarning?.("Terminal.create after restore failed", err);
    }
  }
}
