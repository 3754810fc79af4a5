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

const SDK_URL = "/pkg/pos_terminal.js";

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

  /**
   * @param settings { backendUrl, databaseName?, requestTimeoutMs?, forwardIntervalMs?, offline? }
   * @param handlers the SDK's callbacks (onNetworkStatusChange, onOfflineStatusChange,
   *   onPaymentForwarded, onForwardingFailure, onUnexpectedReaderDisconnect,
   *   onConnectionStatusChange, onPaymentStatusChange), plus
   *   onTerminalReady(terminal, { restored }) and onWarning(what, error).
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
    }
    this.#handlers.onTerminalReady?.(this.#terminal, { restored: false });
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
    const { backendUrl, databaseName, requestTimeoutMs, forwardIntervalMs, offline } = this.#settings;
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
        if (s === "not_connected") this.#reader = null;
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

  async connect(reader) {
    const connected = await this.#require().connectReader(reader);
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

  /** Forgets the held payment (the cashier chose not to retry it). */
  discardHeld() {
    this.#held = null;
  }

  async #process(terminal, collected, onStep) {
    this.#held = null;
    onStep("process", collected);
    try {
      return await terminal.processPayment(collected);
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

  /** The stored payments and the offline status, read together. */
  async stored() {
    const terminal = this.#require();
    const [list, status] = await Promise.all([terminal.listStoredPayments(), terminal.offlineStatus()]);
    return { list: list || [], status };
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
