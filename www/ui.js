// ui.js — the Counter POS page: cart amount + keypad, reader picker, network banner,
// offline payments table, event log. Everything the SDK does goes through pos.js; the
// simulator's test controls live in sim-panel.js and are mounted only under pos-sim.
//
// Test hooks: window.posDemo = { terminal, events, ready, serviceWorker, forwardInWorker() }
// (ready resolves after Terminal.create, reader discovery and the first render of the stored
// payments; terminal is the current one, also after a back/forward-cache restore;
// serviceWorker is the worker's last reported state; forwardInWorker() has the service
// worker forward now and resolves with its report).

import { Pos, MAX_AMOUNT, DEFAULT_OFFLINE, errorInfo } from "./pos.js";
import { loadSimConfig, mountSimPanel } from "./sim-panel.js";
import { LOCALE, formatMoney, formatAmounts, formatTime, formatFullTime, cardText, shortId, plain, h, escapeHtml } from "./format.js";

const LOG_LIMIT = 300;

const $ = (sel) => document.querySelector(sel);

const el = {
  banner: $("#network-banner"),
  networkText: $("#network-text"),
  networkPending: $("#network-pending"),
  configError: $("#config-error"),
  paymentStatus: $("#payment-status"),
  swStatus: $("#sw-status"),
  progress: $("#forward-progress"),
  progressText: $("#forward-progress-text"),
  progressBar: $("#forward-progress-bar"),
  readerSelect: $("#reader-select"),
  discoverBtn: $("#discover-btn"),
  usbBtn: $("#usb-btn"),
  simulatedBtn: $("#simulated-btn"),
  simulateUsb: $("#simulate-usb"),
  connectBtn: $("#connect-btn"),
  readerStatus: $("#reader-status"),
  readerDetail: $("#reader-detail"),
  amountBox: $("#amount-box"),
  amount: $("#amount"),
  amountHint: $("#amount-hint"),
  prompt: $("#payment-prompt"),
  keypad: $("#keypad"),
  currency: $("#currency"),
  offlineBehavior: $("#offline-behavior"),
  payBtn: $("#pay-btn"),
  cancelBtn: $("#cancel-btn"),
  lastResult: $("#last-result"),
  retryBox: $("#retry-box"),
  retryText: $("#retry-text"),
  retryBtn: $("#retry-btn"),
  retryActions: $("#retry-actions"),
  discardBtn: $("#discard-btn"),
  setAsideBtn: $("#set-aside-btn"),
  setAsideConfirm: $("#set-aside-confirm"),
  setAsideConfirmText: $("#set-aside-confirm-text"),
  setAsideConfirmBtn: $("#set-aside-confirm-btn"),
  setAsideBackBtn: $("#set-aside-back-btn"),
  setAside: $("#set-aside"),
  setAsideList: $("#set-aside-list"),
  pendingCount: $("#pending-count"),
  offlineStorage: $("#offline-storage"),
  readerStore: $("#reader-store"),
  readerPendingCount: $("#reader-pending-count"),
  readerLink: $("#reader-link"),
  forwardBtn: $("#forward-btn"),
  forwardReport: $("#forward-report"),
  storedBody: $("#stored-body"),
  storedEmpty: $("#stored-empty"),
  eventLog: $("#event-log"),
  clearLogBtn: $("#clear-log-btn"),
};

// ---------------------------------------------------------------------------
// State

/** @type {Pos | null} */
let pos = null;
let sim = null; // the simulator panel, under pos-sim only

const state = {
  config: null, // { backendUrl, readerUrls }
  readers: new Map(), // id -> Reader
  connectionStatus: "not_connected",
  connectBusy: false,
  busyReader: null, // the reader another POS held at our last connect: the next one takes it over
  digits: "",
  phase: "idle", // idle | collecting | processing
  forwarding: false,
  resultSeq: 0,
  lastStatus: null,
  heldCode: null, // the error code a payment is held for retry after
  confirmingSetAside: false, // the "Set aside" confirmation is open
  setAside: [], // payments set aside after an unknown outcome: { id, amount, currency, card, at, outcome, detail }
  processingId: null, // the payment this page is sending now (its intent record is not "unknown")
  retryUseless: false, // the held payment would only be refused again (Force offline, over the per-payment limit)
  serviceWorker: { state: "checking", controlled: false, backgroundSync: false },
  workerForwarding: false, // the service worker is running a forwarding pass
  forwardFailedWith: 0, // payments waiting when "Forward now" failed (its message is cleared once they are sent)
  progressTotal: 0, // payments waiting when the current forwarding began (the N of "x of N")
  outcomesHeard: 0, // outcomes of this device's stored payments heard so far (whoever sent them)
};

const events = [];
let resolveReady;
let rejectReady;
const ready = new Promise((resolve, reject) => {
  resolveReady = resolve;
  rejectReady = reject;
});
ready.catch(() => {}); // reported on the page; tests observe the rejection themselves

window.posDemo = {
  get terminal() {
    return pos?.terminal ?? null;
  },
  events,
  ready,
  get serviceWorker() {
    return state.serviceWorker;
  },
  forwardInWorker: () => pos.forwardInWorker(),
};

const hasTerminal = () => !!pos?.terminal;

function errorLabel(err) {
  const { code, declineCode } = errorInfo(err);
  return declineCode ? `${code} (${declineCode})` : code;
}

// ---------------------------------------------------------------------------
// Event log

function logEvent(type, payload, level = "info") {
  const data = plain(payload);
  events.push({ type, payload: data, at: Date.now() });
  const json = data === undefined ? "" : JSON.stringify(data, null, 1);
  const li = h(
    "li",
    { class: `log-entry log-${level}`, "data-type": type },
    h("div", { class: "log-head" },
      h("span", { class: "log-type", text: type }),
      h("time", { class: "log-time", text: formatTime(Date.now()) })),
    json && json !== "null" ? h("pre", { class: "log-payload", text: json }) : null,
  );
  el.eventLog.prepend(li);
  while (el.eventLog.children.length > LOG_LIMIT) el.eventLog.lastElementChild.remove();
}

el.clearLogBtn.addEventListener("click", () => el.eventLog.replaceChildren());

window.addEventListener("unhandledrejection", (e) => {
  logEvent("unhandledrejection", errorInfo(e.reason), "error");
});

// ---------------------------------------------------------------------------
// Network banner + offline status

const NETWORK_TEXT = {
  online: "Online",
  offline: "Offline — payments are stored on this device and sent when the connection returns",
  unknown: "Checking connection…",
};

function setNetworkStatus(status) {
  const s = NETWORK_TEXT[status] ? status : "unknown";
  el.banner.dataset.status = s;
  // Only this device's link is down: a connected reader with its own link online still
  // takes payments online (README "Two storing agents"); nothing is stored then.
  const readerLink = state.lastStatus?.reader?.networkStatus;
  el.banner.dataset.readerLink = readerLink || "none";
  el.networkText.textContent =
    s === "offline" && readerLink === "online"
      ? "Offline — payments go through the reader's own link"
      : s === "offline" && el.offlineStorage?.value === "reader"
        ? "Offline — payments are stored on the reader (or this device) and sent when a connection returns"
        : NETWORK_TEXT[s];
  renderProgress();
}

function renderOfflineStatus(status) {
  if (!status) return;
  status = plain(status);
  const backOnline = status.networkStatus === "online" && state.lastStatus?.networkStatus !== "online";
  state.lastStatus = status;
  if (status.networkStatus) setNetworkStatus(status.networkStatus);
  const n = Number(status.pendingCount) || 0;
  const amounts = formatAmounts(status.pendingAmounts);
  let text = "";
  if (n > 0) {
    text = `${n} payment${n === 1 ? "" : "s"} waiting to be sent${amounts ? ` (${amounts})` : ""}`;
    if (status.forwarding || state.workerForwarding) text += " · sending…";
  } else if (status.forwarding || state.workerForwarding) {
    text = "Sending stored payments…";
  }
  el.networkPending.textContent = text;
  // A "Forwarding failed" from an earlier "Forward now" is stale once everything was sent
  // (or, when nothing was waiting, once the backend is reachable again).
  if (n === 0 && !forwardingNow()) {
    if (state.forwardFailedWith > 0) clearForwardError("All stored payments have been sent.");
    else if (backOnline) clearForwardError("The backend is reachable again; nothing is waiting to be sent.");
  }
  renderReaderStore(status.reader);
  el.banner.dataset.pending = String(n);
  el.banner.classList.toggle("has-pending", n > 0);
  renderProgress();
}

/** The connected reader's own store (null: no reader that stores). */
function renderReaderStore(reader) {
  el.readerStore.hidden = !reader;
  if (!reader) return;
  const n = Number(reader.pendingCount) || 0;
  const amounts = formatAmounts(reader.pendingAmounts);
  el.readerPendingCount.textContent = String(n);
  el.readerStore.title = `Stored on the connected reader${amounts ? ` (${amounts})` : ""}; it sends them over its own link`;
  el.readerStore.classList.toggle("is-active", n > 0);
  const link = ["online", "offline"].includes(reader.networkStatus) ? reader.networkStatus : "unknown";
  el.readerLink.dataset.status = link === "online" ? "ready" : link;
  el.readerLink.textContent = `link ${link}`;
}

// ---------------------------------------------------------------------------
// Forwarding progress: "Sending x of N", whoever forwards (this page or the service worker)

function forwardingNow() {
  return !!state.lastStatus?.forwarding || state.forwarding || state.workerForwarding;
}

/** Replaces a "Forwarding failed" report (a later run, or the timer, sent the payments). */
function clearForwardError(text) {
  if (el.forwardReport.dataset.status !== "error") return;
  state.forwardFailedWith = 0;
  el.forwardReport.textContent = text;
  el.forwardReport.dataset.status = "done";
}

function renderProgress() {
  const pending = Number(state.lastStatus?.pendingCount) || 0;
  // A run while this device is offline only checks the backend and sends nothing (the
  // timer's run takes ~50 ms): show progress once the backend answered or a payment went.
  const sending = el.banner.dataset.status === "online" || (state.progressTotal > 0 && pending < state.progressTotal);
  if (!forwardingNow() || !sending || (pending === 0 && state.progressTotal === 0)) {
    state.progressTotal = 0;
    el.progress.hidden = true;
    el.progress.dataset.active = "false";
    return;
  }
  state.progressTotal = Math.max(state.progressTotal, pending);
  const total = state.progressTotal;
  const done = Math.min(total, total - pending);
  const who = state.workerForwarding && !state.lastStatus?.forwarding && !state.forwarding ? " (service worker)" : "";
  el.progress.hidden = false;
  el.progress.dataset.active = "true";
  el.progress.dataset.done = String(done);
  el.progress.dataset.total = String(total);
  el.progressText.textContent = done < total
    ? `Sending ${done + 1} of ${total}${who}…`
    : `Sent ${total} of ${total}${who}`;
  el.progressBar.max = total;
  el.progressBar.value = done;
}

// ---------------------------------------------------------------------------
// Service worker state and its forwarding runs

const SW_TEXT = {
  checking: "Offline app: checking…",
  installing: "Offline app: installing…",
  active: "Offline app ready",
  forwarding: "Service worker sending…",
  none: "No service worker",
  unsupported: "No service worker (browser)",
  error: "Service worker failed",
};

function renderServiceWorker() {
  const sw = state.serviceWorker;
  const shown = sw.state === "active" && state.workerForwarding ? "forwarding" : sw.state;
  el.swStatus.dataset.status = shown;
  el.swStatus.dataset.controlled = String(!!sw.controlled);
  el.swStatus.textContent = SW_TEXT[shown] || shown;
  el.swStatus.title = [
    sw.state === "active"
      ? `Service worker active${sw.controlled ? " and serving this page" : " (serves this page from the next load)"}`
      : `Service worker: ${sw.state}${sw.error ? ` — ${sw.error.code}: ${sw.error.message}` : ""}`,
    sw.backgroundSync
      ? "Background Sync: stored payments are sent even with this page closed."
      : "No Background Sync in this browser: stored payments are sent while this page is open.",
  ].join("\n");
}

let workerPoll = null;

/** The database this page uses (null: the default), as the worker's messages name it. */
const pageDatabase = () => new URLSearchParams(location.search).get("db") || null;

function onServiceWorkerMessage(msg) {
  if ((msg.databaseName ?? null) !== pageDatabase()) {
    // A run for a database this page does not use: at start-up the worker forwards the
    // default one, which may have no backend configuration (invalid_argument). Not ours.
    if (msg.type !== "forward-started") {
      logEvent("service worker: run for another database", {
        databaseName: msg.databaseName ?? "(default)",
        reason: msg.reason,
        ...(msg.type === "forward-finished" ? msg.report : { result: msg.error?.code }),
      });
    }
    return;
  }
  if (msg.type === "forward-started") {
    state.workerForwarding = true;
    logEvent("service worker: forwarding", { reason: msg.reason, version: msg.version });
    // The worker reports only start and end: follow its progress in the shared store.
    workerPoll ??= setInterval(() => refreshStored(), 400);
  } else {
    state.workerForwarding = false;
    clearInterval(workerPoll);
    workerPoll = null;
    if (msg.type === "forward-finished") {
      const r = msg.report;
      if (r.forwarded + r.declined + r.failed > 0 || r.remaining > 0) {
        el.forwardReport.textContent =
          `Service worker: forwarded ${r.forwarded} · declined ${r.declined} · failed ${r.failed} · remaining ${r.remaining}`;
        el.forwardReport.dataset.status = "done";
      }
      logEvent("service worker: forwarded", { reason: msg.reason, ...r });
    } else {
      logEvent("service worker: forwarding failed", { reason: msg.reason, ...msg.error }, "warn");
    }
  }
  renderServiceWorker();
  refreshStored();
}

// ---------------------------------------------------------------------------
// Stored payments table

const STATE_LABEL = {
  intent: "Outcome unknown",
  pending: "Pending",
  forwarding: "Sending",
  forwarded: "Forwarded",
  declined: "Declined",
  failed: "Failed",
  quarantined: "Quarantined",
};

let refreshRunning = null;
let refreshAgain = false;
let lastRefreshAt = -Infinity;
/**
 * Refreshes start at least this far apart. A drain settles a payment every few
 * milliseconds, each with an event; re-reading every stored payment and rebuilding the
 * table for each would take the main thread the SDK forwards on (a drain of 150 ran at a
 * fifth of its speed).
 */
const REFRESH_GAP_MS = 500;

/**
 * Re-reads stored payments + offline status: at once after a quiet spell; calls during a
 * refresh, or within REFRESH_GAP_MS of its start, are coalesced into one refresh after it.
 */
function refreshStored() {
  if (!hasTerminal()) return Promise.resolve();
  if (refreshRunning) {
    refreshAgain = true;
    return refreshRunning;
  }
  refreshRunning = (async () => {
    do {
      refreshAgain = false;
      const wait = lastRefreshAt + REFRESH_GAP_MS - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      lastRefreshAt = performance.now();
      await refreshOnce();
    } while (refreshAgain);
  })().finally(() => {
    refreshRunning = null;
  });
  return refreshRunning;
}

async function refreshOnce() {
  if (!hasTerminal()) return; // hidden in the back/forward cache
  try {
    const { list, status } = await pos.stored();
    renderStored(list);
    renderOfflineStatus(status);
  } catch (err) {
    logEvent("refresh failed", errorInfo(err), "error");
  }
}

function renderStored(list) {
  // An intent is an online attempt: the one this page is sending now is no news; any other
  // has an unknown outcome and will be sent again under its id (the SDK does it).
  const rows = list
    .filter((p) => !(p.state === "intent" && p.id === state.processingId))
    .sort((a, b) => Number(b.storedAt) - Number(a.storedAt));
  el.storedBody.replaceChildren(
    ...rows.map((p) => {
      const err = p.lastError;
      const errText = p.declineCode
        ? `${err?.code || "card_declined"} (${p.declineCode})`
        : err
          ? `${err.code}${err.message ? `: ${err.message}` : ""}`
          : "—";
      const attempts = Number(p.attempts ?? 0);
      const waiting = p.state === "pending" || p.state === "forwarding";
      return h(
        "tr",
        {
          "data-id": p.id,
          "data-state": p.state,
          "data-decline-code": p.declineCode || null,
          "data-payment-intent": p.paymentIntentId || null,
        },
        h("td", {},
          h("span", { class: `badge badge-${p.state}`, text: STATE_LABEL[p.state] || p.state }),
          h("div", { class: "muted small", text: `${attempts} ${attempts === 1 ? "attempt" : "attempts"}` })),
        h("td", { class: "num" },
          h("div", { class: "strong", text: formatMoney(p.amount, p.currency) }),
          h("div", { class: "muted small", text: cardText(p.card) })),
        h("td", { text: formatTime(p.storedAt, { seconds: false }), title: formatFullTime(p.storedAt) }),
        h("td", { class: "detail-cell" },
          p.state === "forwarded" && p.paymentIntentId
            ? h("div", { class: "mono", text: shortId(p.paymentIntentId), title: p.paymentIntentId })
            : err || p.declineCode
              ? h("div", {
                  class: waiting ? "warn-text" : "err-text",
                  text: waiting ? `Last try: ${errText}` : errText,
                  title: err?.message || null,
                })
              : p.state === "intent"
                ? h("div", { class: "warn-text", text: "Outcome unknown — will be sent again under the same id" })
                : h("div", {
                    class: "muted",
                    text: { quarantined: "unreadable record", forwarding: "sending now…" }[p.state] || "not sent yet",
                  }),
          h("div", { class: "mono muted small", text: shortId(p.id), title: p.id })),
      );
    }),
  );
  el.storedEmpty.hidden = rows.length > 0;
  // The payment in the result card, settled by someone else (the service worker, another tab).
  const shown = rows.find((p) => p.id === el.lastResult.dataset.paymentId);
  if (shown) settleResultCard(shown);
  for (const p of rows) settleSetAside(p);
  const waiting = rows.filter((p) => p.state === "pending" || p.state === "forwarding").length;
  el.pendingCount.textContent = String(waiting);
  el.pendingCount.closest(".count-badge")?.classList.toggle("is-active", waiting > 0);
}

/** A payment the reader stored and forwarded itself (this page lists only its own store). */
function showReaderForwarded(p, failure = null) {
  if (p.id === el.lastResult.dataset.paymentId) return; // its result card says it
  const outcome = failure
    ? `${failure.declineCode ? `declined (${failure.declineCode})` : `not charged (${failure.code})`}`
    : "approved";
  el.forwardReport.textContent =
    `The reader sent ${formatMoney(p.amount, p.currency)} · ${cardText(p.card)} · ${outcome} (${shortId(p.id)})`;
  el.forwardReport.dataset.status = "reader";
}

el.forwardBtn.addEventListener("click", async () => {
  if (!hasTerminal() || state.forwarding) return;
  state.forwarding = true;
  updateControls();
  el.forwardReport.textContent = "Sending stored payments…";
  el.forwardReport.dataset.status = "running";
  renderProgress();
  try {
    const heardBefore = state.outcomesHeard;
    const report = plain(await pos.forward());
    // The call reports this page's runs; a run already going elsewhere (the service worker
    // after a restart, another tab) settles the payments while it waits, and their outcomes
    // arrive as events.
    const own = report.forwarded + report.declined + report.failed;
    const elsewhere = state.outcomesHeard - heardBefore - own;
    el.forwardReport.textContent =
      `Forwarded ${report.forwarded} · declined ${report.declined} · failed ${report.failed} · remaining ${report.remaining}` +
      (elsewhere > 0 ? ` · ${elsewhere} more sent meanwhile by the service worker or another tab` : "");
    el.forwardReport.dataset.status = "done";
    logEvent("forwardStoredPayments", report);
  } catch (err) {
    const e = errorInfo(err);
    el.forwardReport.textContent = `Forwarding failed — ${e.code}: ${e.message}`;
    el.forwardReport.dataset.status = "error";
    state.forwardFailedWith = Number(state.lastStatus?.pendingCount) || 0;
    logEvent("forwardStoredPayments failed", e, "error");
  } finally {
    state.forwarding = false;
    updateControls();
    refreshStored();
  }
});

// ---------------------------------------------------------------------------
// Payments set aside after payment_outcome_unknown
//
// Setting a payment aside cancels nothing: the SDK keeps its intent record and sends it again
// under the same id about 5 minutes after the attempt (the backend may already have charged
// it). So it stays on screen with its status until the SDK reports its outcome
// (onPaymentForwarded / onForwardingFailure, or the stored list when the service worker or
// another tab sent it). Saved in localStorage, per database, so a reload does not hide it.

const setAsideKey = () => `posDemo.setAside:${pageDatabase() ?? "default"}`;

function loadSetAside() {
  try {
    const list = JSON.parse(localStorage.getItem(setAsideKey()) || "[]");
    state.setAside = Array.isArray(list) ? list.filter((p) => p && p.id) : [];
  } catch {
    state.setAside = [];
  }
  renderSetAside();
}

function saveSetAside() {
  localStorage.setItem(setAsideKey(), JSON.stringify(state.setAside));
  renderSetAside();
}

function addSetAside(collected) {
  if (state.setAside.some((p) => p.id === collected.id)) return;
  const { id, amount, currency, card } = plain(collected);
  state.setAside.unshift({ id, amount, currency, card, at: Date.now(), outcome: null, detail: "" });
  saveSetAside();
}

/** Records a set-aside payment's outcome: `payment` is a StoredPayment, `failure` a ForwardingFailure. */
function settleSetAside(payment, failure = null) {
  const entry = state.setAside.find((p) => p.id === payment?.id);
  if (!entry || entry.outcome) return;
  if (payment.state === "forwarded") {
    entry.outcome = "forwarded";
    entry.detail = payment.paymentIntentId || "";
  } else if (payment.state === "declined") {
    entry.outcome = "declined";
    entry.detail = failure?.declineCode || payment.declineCode || "";
  } else if (payment.state === "failed" || payment.state === "quarantined") {
    const err = failure ?? payment.lastError;
    entry.outcome = "failed";
    entry.detail = err?.code ? `${err.code}${err.message ? `: ${err.message}` : ""}` : "";
  } else {
    return; // still an intent (or being sent): its outcome is still unknown
  }
  logEvent("set-aside payment settled", { id: entry.id, outcome: entry.outcome, detail: entry.detail });
  saveSetAside();
}

function setAsideStatus(p) {
  if (p.outcome === "forwarded") {
    return `Charged — the backend approved it${p.detail ? ` (${p.detail})` : ""}. This sale is paid.`;
  }
  if (p.outcome === "declined") return `Declined${p.detail ? ` (${p.detail})` : ""} — not charged. This sale is not paid.`;
  if (p.outcome === "failed") return `Not sent${p.detail ? ` — ${p.detail}` : ""}. Not charged by this device; see Offline payments.`;
  const due = formatTime(Number(p.at) + 5 * 60_000, { seconds: false });
  return `Outcome unknown — it may already be charged. It will be sent again under the same id (from about ${due}); ` +
    "its outcome will show here. Do not charge this sale again.";
}

function renderSetAside() {
  el.setAside.hidden = state.setAside.length === 0;
  el.setAsideList.replaceChildren(
    ...state.setAside.map((p) =>
      h("li", { class: "set-aside-item", "data-id": p.id, "data-outcome": p.outcome || "unknown" },
        h("div", { class: "set-aside-head" },
          h("strong", { text: formatMoney(p.amount, p.currency) }),
          h("span", { class: "muted small", text: cardText(p.card) }),
          h("span", { class: "mono", text: p.id })),
        h("p", { class: "set-aside-status", text: setAsideStatus(p) }),
        // Removed by the cashier once the outcome is known, never before.
        p.outcome ? h("button", { class: "btn btn-secondary", type: "button", "data-remove": p.id, text: "OK, remove" }) : null),
    ),
  );
}

el.setAsideList.addEventListener("click", (e) => {
  const id = e.target.closest("button[data-remove]")?.dataset.remove;
  if (!id) return;
  state.setAside = state.setAside.filter((p) => p.id !== id || !p.outcome);
  saveSetAside();
});

// ---------------------------------------------------------------------------
// Amount + keypad: at most MAX_AMOUNT minor units, the SDK's own limit

function setDigits(d) {
  state.digits = d.replace(/^0+/, "");
  renderAmount();
}

function amountMinor() {
  return state.digits ? parseInt(state.digits, 10) : 0;
}

function renderAmount() {
  el.amount.textContent = formatMoney(amountMinor(), el.currency.value);
  el.amount.dataset.amount = String(amountMinor());
}

/** Says why a key did nothing: the amount would pass the SDK's maximum. */
function showAmountLimit(show) {
  el.amountHint.hidden = !show;
  el.amountBox.dataset.limit = show ? "reached" : "";
  if (show) {
    el.amountHint.textContent =
      `Maximum ${formatMoney(MAX_AMOUNT, el.currency.value)} per payment ` +
      `(the SDK accepts 1 to ${MAX_AMOUNT.toLocaleString(LOCALE)} minor units).`;
  }
}

function pressKey(key) {
  if (state.phase !== "idle") return;
  if (key === "clear") setDigits("");
  else if (key === "backspace") setDigits(state.digits.slice(0, -1));
  else if (/^\d+$/.test(key)) {
    const next = (state.digits + key).replace(/^0+/, "");
    if (next && Number(next) > MAX_AMOUNT) {
      showAmountLimit(true);
      return;
    }
    setDigits(next);
  }
  showAmountLimit(false);
  updateControls();
}

el.keypad.addEventListener("click", (e) => {
  const btn = e.target.closest("button[data-key]");
  if (btn) pressKey(btn.dataset.key);
});

document.addEventListener("keydown", (e) => {
  const t = e.target;
  if (t instanceof HTMLElement && (t.matches("input, select, textarea") || t.isContentEditable)) return;
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (/^\d$/.test(e.key)) pressKey(e.key);
  else if (e.key === "Backspace") pressKey("backspace");
  else if (e.key === "Escape") {
    if (state.phase === "collecting") cancelCollect();
    else pressKey("clear");
  } else if (e.key === "Enter" && !el.payBtn.disabled && !(t instanceof HTMLButtonElement)) pay();
  else return;
  e.preventDefault();
});

el.currency.addEventListener("change", () => {
  renderAmount();
  if (!el.amountHint.hidden) showAmountLimit(true);
});

// ---------------------------------------------------------------------------
// Controls enable/disable in one place, so nothing stays stuck

function updateControls() {
  const terminal = hasTerminal();
  const idle = state.phase === "idle";
  const connected = state.connectionStatus === "connected" && !!pos?.reader;

  el.keypad.querySelectorAll("button").forEach((b) => (b.disabled = !idle));
  el.currency.disabled = !idle;
  el.offlineBehavior.disabled = !idle;
  // An unknown outcome must not invite a second card: Charge waits for Retry or Dismiss.
  const unknownHeld = !!pos?.held && state.heldCode === "payment_outcome_unknown";
  el.payBtn.disabled = !terminal || !idle || unknownHeld;
  el.payBtn.textContent = idle
    ? amountMinor() > 0 ? `Charge ${formatMoney(amountMinor(), el.currency.value)}` : "Charge"
    : state.phase === "collecting" ? "Waiting for card…" : "Processing…";
  el.cancelBtn.disabled = state.phase !== "collecting";

  el.readerSelect.disabled = !terminal || state.connectBusy || connected || state.readers.size === 0 || !idle;
  el.discoverBtn.disabled = !terminal || state.connectBusy || connected || !idle;
  el.usbBtn.disabled = el.simulatedBtn.disabled = el.discoverBtn.disabled;
  el.connectBtn.disabled = !terminal || state.connectBusy || !idle || (!connected && !el.readerSelect.value);
  el.connectBtn.textContent = state.connectBusy
    ? connected ? "Disconnecting…" : "Connecting…"
    : connected ? "Disconnect" : wantsTakeOver() ? "Take over" : "Connect";
  el.connectBtn.classList.toggle("btn-danger-outline", connected && !state.connectBusy);

  el.forwardBtn.disabled = !terminal || state.forwarding;
  el.forwardBtn.textContent = state.forwarding ? "Forwarding…" : "Forward now";
  el.amountBox.dataset.state = state.phase;

  const held = pos?.held;
  el.retryBox.hidden = !held;
  el.retryBtn.disabled = !held || !idle || !terminal || state.retryUseless;
  // An unknown outcome is never simply dismissed: "Set aside…" asks first, and the payment
  // stays on screen until the SDK reports it (it sends it again under the same id).
  el.discardBtn.hidden = unknownHeld;
  el.discardBtn.disabled = !held || !idle;
  el.setAsideBtn.hidden = !unknownHeld;
  el.setAsideBtn.disabled = !unknownHeld || !idle;
  const confirming = unknownHeld && idle && state.confirmingSetAside;
  el.setAsideConfirm.hidden = !confirming;
  el.retryActions.hidden = confirming;
}

// ---------------------------------------------------------------------------
// Readers

function setReaderStatus(status) {
  const s = ["connecting", "connected", "not_connected"].includes(status) ? status : "not_connected";
  state.connectionStatus = s;
  el.readerStatus.dataset.status = s;
  el.readerStatus.textContent = { connecting: "Connecting…", connected: "Connected", not_connected: "Not connected" }[s];
  const r = pos?.reader;
  if (s === "connected" && r) {
    el.readerDetail.textContent = [r.serialNumber || r.id, r.deviceType, r.firmwareVersion && `fw ${r.firmwareVersion}`]
      .filter(Boolean)
      .join(" · ");
  } else if (s !== "connecting") {
    el.readerDetail.textContent = "";
  }
  updateControls();
}

async function discover() {
  const urls = state.config?.readerUrls || [];
  state.readers.clear();
  if (urls.length === 0) {
    el.readerSelect.replaceChildren(h("option", { value: "", text: "No reader URLs configured" }));
    updateControls();
    return;
  }
  el.readerSelect.replaceChildren(h("option", { value: "", text: "Looking for readers…" }));
  el.discoverBtn.disabled = true;
  try {
    const found = await pos.discover(urls);
    for (const r of found) state.readers.set(r.id, r);
    logEvent("discoverReaders", found.map((r) => ({ id: r.id, label: r.label, url: r.url })));
    if (found.length === 0) {
      el.readerSelect.replaceChildren(h("option", { value: "", text: "No readers reachable" }));
    } else {
      const remembered = localStorage.getItem("posDemo.reader");
      el.readerSelect.replaceChildren(
        ...found.map((r) => h("option", { value: r.id, text: readerText(r), title: r.serialNumber || null })),
      );
      if (remembered && state.readers.has(remembered)) el.readerSelect.value = remembered;
    }
  } catch (err) {
    const e = errorInfo(err);
    el.readerSelect.replaceChildren(h("option", { value: "", text: `Discovery failed: ${e.code}` }));
    logEvent("discoverReaders failed", e, "error");
  } finally {
    updateControls();
  }
}

el.discoverBtn.addEventListener("click", () => discover());

/** The picked reader is held by another POS: connecting takes it over (`takeOver: true`). */
function wantsTakeOver() {
  const r = state.readers.get(el.readerSelect.value);
  return !!r && (r.status === "in_use" || state.busyReader === r.id);
}

const readerText = (r) => `${r.label || r.id}${r.method && r.method !== "websocket" ? ` (${r.method})` : ""}${r.status === "in_use" ? " — in use" : ""}`;

/** Adds the readers `config` finds (USB, simulated) to the picker and selects the first. */
async function discoverMore(config) {
  try {
    const found = await pos.discoverWith(config);
    const fresh = found.filter((r) => !state.readers.has(r.id));
    for (const r of found) state.readers.set(r.id, r);
    if (state.readers.size === found.length) el.readerSelect.replaceChildren();
    el.readerSelect.append(...fresh.map((r) => h("option", { value: r.id, text: readerText(r), title: r.serialNumber || null })));
    if (found[0]) el.readerSelect.value = found[0].id;
    logEvent("discoverReaders", found.map((r) => ({ id: r.id, method: r.method, status: r.status })));
  } catch (err) {
    logEvent("discoverReaders failed", errorInfo(err), "error");
  } finally {
    updateControls();
  }
}

el.usbBtn.addEventListener("click", async () => {
  // "simulate USB": a fake USB reader (www/fake-usb.js, not in the package) bridged to pos-sim.
  const bridgeTo = state.config?.readerUrls?.[0];
  if (el.simulateUsb.checked && bridgeTo && !state.fakeUsb) {
    const { fakeUsbReader } = await import("./fake-usb.js");
    state.fakeUsb = fakeUsbReader(bridgeTo, "DEMO-USB-1", { permitted: false, productName: "Demo USB reader" });
  }
  discoverMore({ method: "usb" });
});
el.simulatedBtn.addEventListener("click", () => discoverMore({ method: "simulated" }));
el.readerSelect.addEventListener("change", () => {
  updateControls();
  // The simulator panel shows the link of the reader picked, read from pos-sim.
  sim?.sync();
});

el.connectBtn.addEventListener("click", async () => {
  if (!hasTerminal() || state.connectBusy) return;
  const wasConnected = state.connectionStatus === "connected" && pos.reader;
  state.connectBusy = true;
  updateControls();
  try {
    if (wasConnected) {
      await pos.disconnect();
      setReaderStatus("not_connected");
      logEvent("disconnectReader", null);
    } else {
      const reader = state.readers.get(el.readerSelect.value);
      if (!reader) throw Object.assign(new Error("Choose a reader first"), { code: "no_reader_selected" });
      const takeOver = wantsTakeOver();
      setReaderStatus("connecting");
      const connected = await pos.connect(reader, { takeOver });
      state.busyReader = null;
      localStorage.setItem("posDemo.reader", connected.id);
      setReaderStatus("connected");
      logEvent("connectReader", connected);
      // The simulator panel shows this reader's own link as pos-sim has it.
      sim?.sync();
    }
  } catch (err) {
    const e = errorInfo(err);
    if (!wasConnected) setReaderStatus("not_connected");
    el.readerDetail.textContent = `${e.code}: ${e.message}`;
    if (!wasConnected && e.code === "reader_busy") {
      state.busyReader = el.readerSelect.value;
      el.readerDetail.textContent = "Another POS is using this reader. Press “Take over” to use it here; that POS is disconnected.";
    }
    logEvent(wasConnected ? "disconnectReader failed" : "connectReader failed", e, "error");
  } finally {
    state.connectBusy = false;
    updateControls();
  }
});

// ---------------------------------------------------------------------------
// Payment

function setPhase(phase, prompt = "") {
  state.phase = phase;
  el.prompt.textContent = prompt;
  updateControls();
}

function showResult(status, body) {
  state.resultSeq += 1;
  el.lastResult.dataset.status = status;
  el.lastResult.dataset.seq = String(state.resultSeq);
  el.lastResult.replaceChildren(...body.flat().filter(Boolean));
}

function showPaymentResult(r) {
  const titles = {
    succeeded: "Approved",
    requires_capture: "Authorized — capture pending",
    stored_offline: "Stored offline",
    stored_on_reader: "Stored on the reader",
  };
  const subs = {
    stored_offline: "Saved on this device; it will be sent automatically when the connection returns.",
    stored_on_reader: "Sealed on the reader; the reader sends it itself when its own connection returns.",
    requires_capture: "The card is authorized; capture it from your back office.",
  };
  el.lastResult.dataset.code = "";
  el.lastResult.dataset.paymentId = r.id;
  delete el.lastResult.dataset.forwarded;
  showResult(r.status, [
    h("div", { class: "result-head" },
      h("span", { class: "result-icon", "aria-hidden": "true", text: r.status.startsWith("stored_") ? "⇣" : "✓" }),
      h("strong", { class: "result-title", text: titles[r.status] || r.status }),
      h("span", { class: "result-amount", text: formatMoney(r.amount, r.currency) })),
    subs[r.status] ? h("p", { class: "result-sub", text: subs[r.status] }) : null,
    h("dl", { class: "result-grid" },
      h("dt", { text: "Card" }), h("dd", { class: "result-card", text: cardText(r.card) }),
      h("dt", { text: "Payment" }), h("dd", { class: "mono result-id", text: r.id }),
      r.paymentIntentId ? [h("dt", { text: "Intent" }), h("dd", { class: "mono", text: r.paymentIntentId })] : null,
      [h("dt", { text: "Through" }), h("dd", { class: "result-agent", text: r.processedBy === "reader" ? "the reader's own link" : "this device" })],
      r.offlineDetails
        ? [h("dt", { text: "Stored" }), h("dd", { text: formatTime(r.offlineDetails.storedAt) })]
        : null),
  ]);
}

/**
 * The result card of a stored payment once it is settled: forwarded, declined or failed
 * (onPaymentForwarded, onForwardingFailure, or the stored list when the service worker or
 * another tab sent it). `payment` is a StoredPayment; `failure` the ForwardingFailure, if any.
 * The card keeps its data-status and data-seq; data-forwarded says the outcome.
 */
function settleResultCard(payment, failure = null) {
  const card = el.lastResult;
  if (!payment?.id || card.dataset.paymentId !== payment.id) return;
  if (card.dataset.status !== "stored_offline" && card.dataset.status !== "stored_on_reader") return;
  let outcome;
  let title;
  let text;
  if (payment.state === "forwarded") {
    outcome = "forwarded";
    title = "Forwarded"; // the card's icon is the check mark
    text = `Sent to the payment backend${payment.paymentIntentId ? ` (${payment.paymentIntentId})` : ""}: the payment is complete.`;
  } else if (payment.state === "declined") {
    const decline = failure?.declineCode || payment.declineCode;
    outcome = "declined";
    title = "Declined when forwarded";
    text = `The backend declined the card${decline ? ` (${decline})` : ""}: this payment was not collected.`;
  } else if (payment.state === "failed" || payment.state === "quarantined") {
    const err = failure ?? payment.lastError;
    outcome = "failed";
    title = "Forwarding failed";
    text = `Not sent${err?.code ? ` — ${err.code}${err.message ? `: ${err.message}` : ""}` : ""}. See Offline payments.`;
  } else {
    return; // still waiting: the card's "sent automatically" stands
  }
  if (card.dataset.forwarded === outcome) return;
  card.dataset.forwarded = outcome;
  const titleEl = card.querySelector(".result-title");
  if (titleEl) titleEl.textContent = title;
  const icon = card.querySelector(".result-icon");
  if (icon) icon.textContent = outcome === "forwarded" ? "✓" : "!";
  const sub = card.querySelector(".result-sub");
  if (sub) sub.textContent = text;
}

const FRIENDLY_ERROR = {
  card_declined: "Card declined",
  collect_canceled: "Payment canceled",
  backend_unreachable: "Payment backend unreachable",
  backend_timeout: "Payment backend did not answer",
  payment_outcome_unknown: "Payment outcome unknown",
  reader_not_connected: "No reader connected",
  offline_limit_exceeded: "Offline limit reached",
  offline_disabled: "Offline payments are disabled",
  offline_payment_method_unsupported: "This card cannot be taken offline",
  invalid_amount: "Invalid amount",
  invalid_currency: "Invalid currency",
  storage_failed: "Could not store the payment on this device",
};

const OFFLINE_TRANSACTION_LIMIT = /^(\d+) ([a-z]{3}) exceeds the offline transaction limit of (\d+)$/;
const OFFLINE_STORED_LIMIT = /^storing (\d+) ([a-z]{3}) would bring the offline total to (\d+) \(limit (\d+)\)$/;

/**
 * The SDK's offline_limit_exceeded message with its amounts (minor units) as money, or the
 * message as is when it is not one of these two (the event log keeps the SDK's own text).
 */
function offlineLimitText(message) {
  let m = OFFLINE_TRANSACTION_LIMIT.exec(message);
  if (m) return `${formatMoney(m[1], m[2])} is above the offline limit per payment (${formatMoney(m[3], m[2])}).`;
  m = OFFLINE_STORED_LIMIT.exec(message);
  if (m) {
    return `Storing ${formatMoney(m[1], m[2])} would bring the payments stored offline to ${formatMoney(m[3], m[2])}, ` +
      `above the limit of ${formatMoney(m[4], m[2])}.`;
  }
  return message;
}

function showError(err, context) {
  const e = errorInfo(err);
  el.lastResult.dataset.code = e.code;
  delete el.lastResult.dataset.paymentId;
  delete el.lastResult.dataset.forwarded;
  showResult("error", [
    h("div", { class: "result-head" },
      h("span", { class: "result-icon", "aria-hidden": "true", text: "!" }),
      h("strong", { class: "result-title", text: FRIENDLY_ERROR[e.code] || (context ? `${context} failed` : "Error") })),
    h("p", { class: "result-error", title: e.code === "offline_limit_exceeded" ? e.message : null },
      h("code", { class: "result-code", text: errorLabel(err) }), ": ",
      e.code === "offline_limit_exceeded" ? offlineLimitText(e.message) : e.message),
  ]);
}

/** The Retry offer under the result, for a payment the SDK still holds. */
function renderRetry(err) {
  const held = pos?.held;
  state.heldCode = held ? errorInfo(err).code : null;
  state.retryUseless = false;
  if (held) {
    el.retryBox.dataset.paymentId = held.id;
    el.retryBox.dataset.code = state.heldCode;
    // A retry keeps the payment's offline behaviour: "Force offline" stores again, so over an
    // offline limit it is refused again (for good when the payment alone is over the limit).
    const forcedOverLimit = state.heldCode === "offline_limit_exceeded" && held.offlineBehavior === "force_offline";
    const overPerPayment = forcedOverLimit && OFFLINE_TRANSACTION_LIMIT.test(errorInfo(err).message);
    state.retryUseless = overPerPayment;
    el.retryText.textContent = state.heldCode === "payment_outcome_unknown"
      ? `The backend may already have this payment (${formatMoney(held.amount, held.currency)}, ${held.id}). ` +
        "Retry sends the same payment again: the backend recognises its id, so the card is charged at most once. " +
        "Do not ask for another card. Charge stays locked until you retry. If the backend stays out of reach, " +
        "“Set aside” keeps this payment on screen while the SDK sends it again under the same id."
      : overPerPayment
        ? "Retry cannot help: this payment was taken with “Force offline” and is above the offline limit per payment, " +
          "so it would be refused again. Dismiss it and charge again with “Prefer online” or “Require online”."
        : forcedOverLimit
          ? `Retry processes the same payment (${held.id}, ${cardText(held.card)}) again, still with “Force offline”: ` +
            "it is refused again until the payments stored offline are forwarded (Forward now, with the backend reachable)."
          : `Retry processes the same payment (${held.id}, ${cardText(held.card)}) again, without a new tap.`;
  } else {
    delete el.retryBox.dataset.paymentId;
    delete el.retryBox.dataset.code;
  }
  state.confirmingSetAside = false;
  updateControls();
  // At 1280x800 the box lands below the fold: bring it into view when it appears.
  if (held && !el.retryBox.hidden) el.retryBox.scrollIntoView({ block: "nearest", behavior: "smooth" });
}

function nextOrderNumber() {
  const n = (parseInt(localStorage.getItem("posDemo.order") || "0", 10) || 0) + 1;
  localStorage.setItem("posDemo.order", String(n));
  return n;
}

/** Runs one payment call (pay or retry) with the phases, result and retry offer around it. */
async function runPayment(call) {
  let error = null;
  try {
    const result = await call();
    logEvent("processPayment", result);
    showPaymentResult(result);
    setDigits("");
  } catch (err) {
    error = err;
    logEvent("payment failed", errorInfo(err), "error");
    showError(err, "Payment");
  } finally {
    state.processingId = null;
    setPhase("idle");
    renderRetry(error);
    refreshStored();
  }
}

async function pay() {
  if (!hasTerminal() || state.phase !== "idle") return;
  const amount = amountMinor();
  const currency = el.currency.value;
  const offlineBehavior = el.offlineBehavior.value;
  if (amount <= 0) {
    showError(Object.assign(new Error("Enter an amount on the keypad first"), { code: "invalid_amount" }));
    return;
  }
  setPhase("collecting", "Preparing reader…");
  const metadata = { order: String(nextOrderNumber()) };
  const onStep = (step, collected) => {
    if (step === "collect") {
      setPhase("collecting", `Tap or insert card — ${formatMoney(amount, currency)}`);
    } else {
      state.processingId = collected.id;
      logEvent("collectPaymentMethod", collected);
      setPhase("processing", "Processing…");
    }
  };
  await runPayment(() => pos.pay({ amount, currency, offlineBehavior, metadata }, onStep));
}

async function retry() {
  if (!hasTerminal() || state.phase !== "idle" || !pos.held) return;
  logEvent("retry processPayment", { id: pos.held.id });
  state.processingId = pos.held.id;
  setPhase("processing", "Processing again…");
  await runPayment(() => pos.retry());
}

async function cancelCollect() {
  if (!hasTerminal() || state.phase !== "collecting") return;
  el.cancelBtn.disabled = true;
  el.prompt.textContent = "Canceling…";
  try {
    await pos.cancel();
  } catch (err) {
    logEvent("cancelCollectPaymentMethod failed", errorInfo(err), "error");
    if (state.phase === "collecting") el.cancelBtn.disabled = false;
  }
}

el.payBtn.addEventListener("click", () => pay());
el.cancelBtn.addEventListener("click", () => cancelCollect());
el.retryBtn.addEventListener("click", () => retry());
el.discardBtn.addEventListener("click", () => {
  // Only offered when nothing reached the backend (not after payment_outcome_unknown).
  pos?.discardHeld();
  renderRetry(null);
});
el.setAsideBtn.addEventListener("click", () => {
  const held = pos?.held;
  if (!held) return;
  el.setAsideConfirmText.textContent =
    `Set aside ${formatMoney(held.amount, held.currency)} (${held.id})? This payment may still go through: ` +
    "the backend may already have charged it, and the SDK sends it again under the same id in about 5 minutes. " +
    "Its outcome will be reported on this page, under “Set aside”. Do not charge this sale again.";
  state.confirmingSetAside = true;
  updateControls();
  el.setAsideBackBtn.focus();
});
el.setAsideBackBtn.addEventListener("click", () => {
  state.confirmingSetAside = false;
  updateControls();
  el.retryBtn.focus();
});
el.setAsideConfirmBtn.addEventListener("click", () => {
  if (!pos?.held || state.heldCode !== "payment_outcome_unknown") return;
  const held = pos.discardHeld();
  logEvent("payment set aside", { id: held.id, amount: held.amount, currency: held.currency });
  addSetAside(held);
  setDigits(""); // the sale's amount is not left on the keypad, ready to be charged again
  renderRetry(null);
  el.setAside.scrollIntoView({ block: "nearest", behavior: "smooth" });
});

// ---------------------------------------------------------------------------
// Configuration + start-up

/** The backend without pos-sim: ?backend=https://…&readers=wss://…,wss://… */
function configFromUrl() {
  const q = new URLSearchParams(location.search);
  const backend = q.get("backend");
  if (!backend) return null;
  return {
    backendUrl: backend.replace(/\/+$/, ""),
    readerUrls: (q.get("readers") || "").split(",").map((s) => s.trim()).filter(Boolean),
  };
}

// TEST KNOBS — URL parameters for tests and experiments, not settings a real page exposes:
//   ?db=NAME                  IndexedDB database name (a fresh store per test)
//   ?requestTimeoutMs=N       the SDK's backend request timeout (small → provoke timeouts)
//   ?forwardIntervalMs=N      the SDK's forwarding timer
//   ?offlineTransactionLimit=N  offline per-payment limit (minor units, every currency)
//   ?offlineStorage=sdk|reader  which agent stores offline (else the page's switch, saved)
const OFFLINE_STORAGE_KEY = "posDemo.offlineStorage";

// offlineStorage is a Terminal option: the switch saves it and reloads the page.
el.offlineStorage.addEventListener("change", () => {
  localStorage.setItem(OFFLINE_STORAGE_KEY, el.offlineStorage.value);
  const url = new URL(location.href);
  url.searchParams.delete("offlineStorage");
  location.replace(url);
});

function testKnobs() {
  const q = new URLSearchParams(location.search);
  const number = (name) => {
    const v = q.get(name);
    const n = v == null ? NaN : Number(v);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  };
  const storage = q.get("offlineStorage") || localStorage.getItem(OFFLINE_STORAGE_KEY);
  const knobs = {
    offlineStorage: storage === "reader" ? "reader" : "sdk",
    databaseName: q.get("db") || undefined,
    requestTimeoutMs: number("requestTimeoutMs"),
    forwardIntervalMs: number("forwardIntervalMs"),
  };
  const limit = number("offlineTransactionLimit");
  if (limit) {
    const each = (n) => Object.fromEntries(Object.keys(DEFAULT_OFFLINE.transactionLimit).map((c) => [c, n]));
    knobs.offline = { ...DEFAULT_OFFLINE, transactionLimit: each(limit) };
  }
  return knobs;
}

const SAVED_CONFIG_KEY = "posDemo.config";

function savedConfig() {
  try {
    const c = JSON.parse(localStorage.getItem(SAVED_CONFIG_KEY) || "null");
    return c?.backendUrl ? { backendUrl: String(c.backendUrl), readerUrls: (c.readerUrls || []).map(String) } : null;
  } catch {
    return null;
  }
}

function showConfigError(html) {
  el.configError.innerHTML = html;
  el.configError.hidden = false;
}

/** The SDK's events, rendered. */
const handlers = {
  onNetworkStatusChange(status) {
    logEvent("onNetworkStatusChange", status);
    setNetworkStatus(status);
    sim?.sync();
  },
  onOfflineStatusChange(status) {
    logEvent("onOfflineStatusChange", status);
    const s = plain(status);
    const changed = JSON.stringify(s) !== JSON.stringify(state.lastStatus);
    renderOfflineStatus(s);
    if (changed) refreshStored();
  },
  onPaymentForwarded(payment) {
    logEvent("onPaymentForwarded", payment);
    const p = plain(payment);
    if (p.storedBy !== "reader") state.outcomesHeard += 1;
    settleResultCard(p);
    settleSetAside(p);
    if (p.storedBy === "reader") showReaderForwarded(p);
    else clearForwardError("Forwarding works again: stored payments are being sent.");
    refreshStored();
  },
  onForwardingFailure(failure) {
    logEvent("onForwardingFailure", failure, "error");
    const f = plain(failure);
    if (f?.payment?.storedBy !== "reader") state.outcomesHeard += 1;
    settleResultCard(f?.payment, f);
    settleSetAside(f?.payment, f);
    if (f?.payment?.storedBy === "reader") showReaderForwarded(f.payment, f);
    refreshStored();
  },
  onUnexpectedReaderDisconnect(error) {
    logEvent("onUnexpectedReaderDisconnect", error, "error");
    setReaderStatus("not_connected");
    el.readerDetail.textContent = `Reader disconnected — ${errorLabel(error)}`;
  },
  onConnectionStatusChange(status) {
    logEvent("onConnectionStatusChange", status);
    setReaderStatus(status);
  },
  onPaymentStatusChange(status) {
    logEvent("onPaymentStatusChange", status);
    el.paymentStatus.dataset.status = status;
    el.paymentStatus.textContent =
      { not_ready: "Not ready", ready: "Ready", waiting_for_input: "Waiting for card", processing: "Processing" }[status] || status;
  },
  onTerminalReady(terminal, { restored }) {
    if (!restored) return;
    // Back from the back/forward cache with a new terminal (and the reader reconnected).
    logEvent("terminal restored", { reader: pos.reader?.id ?? null });
    setReaderStatus(pos.reader ? "connected" : "not_connected");
    renderRetry(null);
    refreshStored();
  },
  onWarning(what, err) {
    logEvent(what, errorInfo(err), "warn");
  },
  onServiceWorkerState(sw) {
    state.serviceWorker = sw;
    logEvent("service worker", sw);
    renderServiceWorker();
  },
  onServiceWorkerMessage,
};

window.addEventListener("pagehide", (e) => logEvent("pagehide", { persisted: e.persisted }));
window.addEventListener("pageshow", (e) => {
  if (e.persisted) logEvent("pageshow", { persisted: true });
});

async function start() {
  renderAmount();
  renderServiceWorker();
  updateControls();

  // With a configuration saved by an earlier start, the POS does not wait long for pos-sim's.
  const simConfig = await loadSimConfig(savedConfig() ? 1500 : 5000);
  const urlConfig = configFromUrl();
  // A plain load (the installed app opens the manifest's start_url "./", with no query) and a
  // load with no network (pos-sim's config endpoint unreachable, the page from the service
  // worker's cache): use the configuration of the last start, whichever way it came.
  const saved = simConfig || urlConfig ? null : savedConfig();
  const config = simConfig ?? urlConfig ?? saved;
  if (simConfig) localStorage.setItem(SAVED_CONFIG_KEY, JSON.stringify({ ...simConfig, simulator: true }));
  else if (urlConfig) localStorage.setItem(SAVED_CONFIG_KEY, JSON.stringify(urlConfig));
  if (!config) {
    showConfigError(
      "<strong>No payment backend configured.</strong> Open this page from <code>pos-sim</code> " +
        "(<code>cargo xtask demo</code>), or add <code>?backend=https://…&amp;readers=wss://…,wss://…</code> to the URL.",
    );
    setNetworkStatus("unknown");
    throw Object.assign(new Error("no backend configured"), { code: "no_config" });
  }
  state.config = config;

  const knobs = testKnobs();
  el.offlineStorage.value = knobs.offlineStorage;
  pos = new Pos({ backendUrl: config.backendUrl, serviceWorker: "./sw.js", ...knobs }, handlers);
  try {
    await pos.start();
  } catch (err) {
    const e = errorInfo(err);
    const what = e.code === "sdk_unavailable" ? "The payment SDK could not be loaded" : "The terminal could not start";
    showConfigError(`<strong>${what}</strong> — <code>${escapeHtml(e.code)}</code>: ${escapeHtml(e.message)}`);
    throw err;
  }
  logEvent("Terminal.create", { backendUrl: config.backendUrl, readers: config.readerUrls.length, simulator: !!simConfig, savedConfig: !!saved, offlineStorage: knobs.offlineStorage });

  if (simConfig) {
    const picked = () => pos.reader || state.readers.get(el.readerSelect.value) || null;
    // The fake USB reader ("simulate USB") is bridged to pos-sim's first reader: drive that one.
    const simReaderId = (r) => (r?.method === "usb" && state.fakeUsb ? simConfig.simReaderIds[0] : r?.id) || "";
    sim = mountSimPanel({
      simReaderIds: simConfig.simReaderIds,
      readerId: () => simReaderId(picked()),
      inPageReader: () => picked()?.method === "simulated",
      setInPageCard: (testCardNumber, entryMode) => pos.setSimulatorConfiguration({ testCardNumber, entryMode }),
      offlineStorage: () => el.offlineStorage.value,
    });
    await sim.sync();
  }

  updateControls();
  loadSetAside();
  // The first render now, not after a refresh the start-up's own status events asked for.
  await Promise.all([refreshOnce(), discover()]);
}

start().then(
  () => resolveReady(true),
  (err) => {
    logEvent("startup failed", errorInfo(err), "error");
    if (!hasTerminal()) {
      el.networkText.textContent = "Payments unavailable — see the message below";
      el.readerSelect.replaceChildren(h("option", { value: "", text: "Unavailable" }));
    }
    updateControls();
    rejectReady(err);
  },
);
