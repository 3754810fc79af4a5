// Counter POS — a demo point-of-sale page for the pos-terminal SDK.
// Plain ES module, no build step. The SDK is loaded from /pkg/pos_terminal.js.
//
// Test hooks: window.posDemo = { terminal, events, ready } (ready resolves after
// Terminal.create, reader discovery and the first render of the stored payments).

const SDK_URL = "/pkg/pos_terminal.js";
const LOCALE = navigator.language || "en-US";
const MAX_DIGITS = 9; // up to 9,999,999.99 in a two-decimal currency
const LOG_LIMIT = 300;

const $ = (sel) => document.querySelector(sel);

const el = {
  banner: $("#network-banner"),
  networkText: $("#network-text"),
  networkPending: $("#network-pending"),
  configError: $("#config-error"),
  paymentStatus: $("#payment-status"),
  readerSelect: $("#reader-select"),
  discoverBtn: $("#discover-btn"),
  connectBtn: $("#connect-btn"),
  readerStatus: $("#reader-status"),
  readerDetail: $("#reader-detail"),
  amountBox: $("#amount-box"),
  amount: $("#amount"),
  prompt: $("#payment-prompt"),
  keypad: $("#keypad"),
  currency: $("#currency"),
  offlineBehavior: $("#offline-behavior"),
  payBtn: $("#pay-btn"),
  cancelBtn: $("#cancel-btn"),
  lastResult: $("#last-result"),
  pendingCount: $("#pending-count"),
  forwardBtn: $("#forward-btn"),
  forwardReport: $("#forward-report"),
  storedBody: $("#stored-body"),
  storedEmpty: $("#stored-empty"),
  simPanel: $("#sim-panel"),
  simCard: $("#sim-card"),
  simCardBtn: $("#sim-card-btn"),
  simNetworkToggle: $("#sim-network-toggle"),
  simStatus: $("#sim-status"),
  eventLog: $("#event-log"),
  clearLogBtn: $("#clear-log-btn"),
};

// ---------------------------------------------------------------------------
// State

const state = {
  terminal: null,
  config: null, // { backendUrl, readerUrls, sim }
  readers: new Map(), // id -> Reader
  connectedReader: null,
  connectionStatus: "not_connected",
  connectBusy: false,
  digits: "",
  phase: "idle", // idle | collecting | processing
  collectStarted: false, // collectPaymentMethod has been called for the current payment
  cancelRequested: false, // Cancel pressed before the card was requested
  forwarding: false,
  simNetworkDown: false,
  resultSeq: 0,
  lastStatus: null,
};

const events = [];
let resolveReady;
let rejectReady;
const ready = new Promise((resolve, reject) => {
  resolveReady = resolve;
  rejectReady = reject;
});
ready.catch(() => {}); // reported on the page; tests observe the rejection themselves

window.posDemo = { terminal: null, events, ready };

// ---------------------------------------------------------------------------
// Formatting helpers

const formatters = new Map();
function formatter(currency) {
  const key = (currency || "usd").toUpperCase();
  if (!formatters.has(key)) {
    try {
      formatters.set(key, new Intl.NumberFormat(LOCALE, { style: "currency", currency: key }));
    } catch {
      formatters.set(key, null);
    }
  }
  return formatters.get(key);
}

function minorDigits(currency) {
  const f = formatter(currency);
  return f ? f.resolvedOptions().maximumFractionDigits : 2;
}

function formatMoney(amount, currency) {
  const f = formatter(currency);
  const n = Number(amount) || 0;
  if (!f) return `${(n / 100).toFixed(2)} ${String(currency || "").toUpperCase()}`;
  return f.format(n / 10 ** minorDigits(currency));
}

/** Sums per currency (object or Map) as "$36.00 + €12.00". */
function formatAmounts(amounts) {
  const entries = amounts instanceof Map ? [...amounts.entries()] : Object.entries(amounts || {});
  return entries
    .filter(([, v]) => Number(v) > 0)
    .map(([cur, v]) => formatMoney(v, cur))
    .join(" + ");
}

function formatTime(ms, { seconds = true } = {}) {
  if (ms == null) return "—";
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return "—";
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString(LOCALE, { hour: "numeric", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) })
    : d.toLocaleString(LOCALE, { dateStyle: "short", timeStyle: "short" });
}

function formatFullTime(ms) {
  if (ms == null) return null;
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? null : d.toLocaleString(LOCALE, { dateStyle: "medium", timeStyle: "medium" });
}

function cardText(card) {
  if (!card) return "—";
  const brand = card.brand ? titleCase(card.brand) : "Card";
  return card.last4 ? `${brand} ••••${card.last4}` : brand;
}

function titleCase(s) {
  const special = { amex: "Amex", visa: "Visa", mastercard: "Mastercard", jcb: "JCB", unionpay: "UnionPay", interac: "Interac" };
  const k = String(s).toLowerCase();
  return special[k] || k.charAt(0).toUpperCase() + k.slice(1);
}

function shortId(id) {
  if (!id) return "";
  const s = String(id);
  return s.length > 14 ? `${s.slice(0, 6)}…${s.slice(-6)}` : s;
}

/** Deep-converts SDK values (Maps, Errors, BigInts) into plain JSON-friendly data. */
function plain(value, depth = 0) {
  if (depth > 8) return "[…]";
  if (value == null) return value ?? null;
  if (typeof value === "bigint") return Number(value);
  if (typeof value !== "object") return typeof value === "function" ? "[function]" : value;
  if (value instanceof Error) {
    const out = { name: value.name, message: value.message };
    for (const k of ["code", "declineCode"]) if (value[k] !== undefined) out[k] = plain(value[k], depth + 1);
    return out;
  }
  if (value instanceof Map) {
    const out = {};
    for (const [k, v] of value) out[String(k)] = plain(v, depth + 1);
    return out;
  }
  if (Array.isArray(value)) return value.map((v) => plain(v, depth + 1));
  const out = {};
  for (const [k, v] of Object.entries(value)) out[k] = plain(v, depth + 1);
  return out;
}

function errorInfo(err) {
  if (err && typeof err === "object") {
    return {
      code: err.code ? String(err.code) : "error",
      message: err.message ? String(err.message) : String(err),
      declineCode: err.declineCode ?? null,
    };
  }
  return { code: "error", message: String(err), declineCode: null };
}

function errorLabel(err) {
  const { code, declineCode } = errorInfo(err);
  return declineCode ? `${code} (${declineCode})` : code;
}

function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c == null || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
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
  el.networkText.textContent = NETWORK_TEXT[s];
}

function renderOfflineStatus(status) {
  if (!status) return;
  status = plain(status);
  state.lastStatus = status;
  if (status.networkStatus) setNetworkStatus(status.networkStatus);
  const n = Number(status.pendingCount) || 0;
  const amounts = formatAmounts(status.pendingAmounts);
  let text = "";
  if (n > 0) {
    text = `${n} payment${n === 1 ? "" : "s"} waiting to be sent${amounts ? ` (${amounts})` : ""}`;
    if (status.forwarding) text += " · sending…";
  } else if (status.forwarding) {
    text = "Sending stored payments…";
  }
  el.networkPending.textContent = text;
  el.banner.dataset.pending = String(n);
  el.banner.classList.toggle("has-pending", n > 0);
}

// ---------------------------------------------------------------------------
// Stored payments table

const STATE_LABEL = {
  pending: "Pending",
  forwarding: "Sending",
  forwarded: "Forwarded",
  declined: "Declined",
  failed: "Failed",
  quarantined: "Quarantined",
};

let refreshRunning = null;
let refreshAgain = false;

/** Re-reads stored payments + offline status; concurrent calls are coalesced. */
function refreshStored() {
  if (!state.terminal) return Promise.resolve();
  if (refreshRunning) {
    refreshAgain = true;
    return refreshRunning;
  }
  refreshRunning = (async () => {
    do {
      refreshAgain = false;
      await refreshOnce();
    } while (refreshAgain);
  })().finally(() => {
    refreshRunning = null;
  });
  return refreshRunning;
}

async function refreshOnce() {
  const terminal = state.terminal;
  try {
    const [list, status] = await Promise.all([terminal.listStoredPayments(), terminal.offlineStatus()]);
    renderStored(list || []);
    renderOfflineStatus(status);
  } catch (err) {
    logEvent("refresh failed", errorInfo(err), "error");
  }
}

function renderStored(list) {
  const rows = [...list].sort((a, b) => Number(b.storedAt) - Number(a.storedAt));
  el.storedBody.replaceChildren(
    ...rows.map((p) => {
      const err = p.lastError;
      const errText = p.declineCode
        ? `${err?.code || "card_declined"} (${p.declineCode})`
        : err
          ? `${err.code}${err.message ? `: ${err.message}` : ""}`
          : "—";
      const attempts = Number(p.attempts ?? 0);
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
                  class: p.state === "pending" || p.state === "forwarding" ? "warn-text" : "err-text",
                  text: p.state === "pending" || p.state === "forwarding" ? `Last try: ${errText}` : errText,
                  title: err?.message || null,
                })
              : h("div", { class: "muted", text: p.state === "quarantined" ? "unreadable record" : "not sent yet" }),
          h("div", { class: "mono muted small", text: shortId(p.id), title: p.id })),
      );
    }),
  );
  el.storedEmpty.hidden = rows.length > 0;
  const waiting = rows.filter((p) => p.state === "pending" || p.state === "forwarding").length;
  el.pendingCount.textContent = String(waiting);
  el.pendingCount.closest(".count-badge")?.classList.toggle("is-active", waiting > 0);
}

el.forwardBtn.addEventListener("click", async () => {
  if (!state.terminal || state.forwarding) return;
  state.forwarding = true;
  updateControls();
  el.forwardReport.textContent = "Sending stored payments…";
  el.forwardReport.dataset.status = "running";
  try {
    const r = await state.terminal.forwardStoredPayments();
    const report = plain(r);
    el.forwardReport.textContent =
      `Forwarded ${report.forwarded} · declined ${report.declined} · failed ${report.failed} · remaining ${report.remaining}`;
    el.forwardReport.dataset.status = "done";
    logEvent("forwardStoredPayments", report);
  } catch (err) {
    const e = errorInfo(err);
    el.forwardReport.textContent = `Forwarding failed — ${e.code}: ${e.message}`;
    el.forwardReport.dataset.status = "error";
    logEvent("forwardStoredPayments failed", e, "error");
  } finally {
    state.forwarding = false;
    updateControls();
    refreshStored();
  }
});

// ---------------------------------------------------------------------------
// Amount + keypad

function setDigits(d) {
  state.digits = d.replace(/^0+/, "").slice(0, MAX_DIGITS);
  renderAmount();
}

function amountMinor() {
  return state.digits ? parseInt(state.digits, 10) : 0;
}

function renderAmount() {
  el.amount.textContent = formatMoney(amountMinor(), el.currency.value);
  el.amount.dataset.amount = String(amountMinor());
}

function pressKey(key) {
  if (state.phase !== "idle") return;
  if (key === "clear") setDigits("");
  else if (key === "backspace") setDigits(state.digits.slice(0, -1));
  else if (/^\d+$/.test(key)) {
    if ((state.digits + key).replace(/^0+/, "").length <= MAX_DIGITS) setDigits(state.digits + key);
  }
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
});

// ---------------------------------------------------------------------------
// Controls enable/disable in one place, so nothing stays stuck

function updateControls() {
  const hasTerminal = !!state.terminal;
  const idle = state.phase === "idle";
  const connected = state.connectionStatus === "connected" && !!state.connectedReader;

  el.keypad.querySelectorAll("button").forEach((b) => (b.disabled = !idle));
  el.currency.disabled = !idle;
  el.offlineBehavior.disabled = !idle;
  el.payBtn.disabled = !hasTerminal || !idle;
  el.payBtn.textContent = idle
    ? amountMinor() > 0 ? `Charge ${formatMoney(amountMinor(), el.currency.value)}` : "Charge"
    : state.phase === "collecting" ? "Waiting for card…" : "Processing…";
  el.cancelBtn.disabled = state.phase !== "collecting";

  el.readerSelect.disabled = !hasTerminal || state.connectBusy || connected || state.readers.size === 0 || !idle;
  el.discoverBtn.disabled = !hasTerminal || state.connectBusy || connected || !idle;
  el.connectBtn.disabled = !hasTerminal || state.connectBusy || !idle || (!connected && !el.readerSelect.value);
  el.connectBtn.textContent = state.connectBusy
    ? connected ? "Disconnecting…" : "Connecting…"
    : connected ? "Disconnect" : "Connect";
  el.connectBtn.classList.toggle("btn-danger-outline", connected && !state.connectBusy);

  el.forwardBtn.disabled = !hasTerminal || state.forwarding;
  el.forwardBtn.textContent = state.forwarding ? "Forwarding…" : "Forward now";
  el.amountBox.dataset.state = state.phase;
}

// ---------------------------------------------------------------------------
// Readers

function setReaderStatus(status) {
  const s = ["connecting", "connected", "not_connected"].includes(status) ? status : "not_connected";
  state.connectionStatus = s;
  el.readerStatus.dataset.status = s;
  el.readerStatus.textContent = { connecting: "Connecting…", connected: "Connected", not_connected: "Not connected" }[s];
  if (s === "connected" && state.connectedReader) {
    const r = state.connectedReader;
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
    const found = (await state.terminal.discoverReaders({ method: "websocket", urls })) || [];
    for (const r of found) state.readers.set(r.id, r);
    logEvent("discoverReaders", found.map((r) => ({ id: r.id, label: r.label, url: r.url })));
    if (found.length === 0) {
      el.readerSelect.replaceChildren(h("option", { value: "", text: "No readers reachable" }));
    } else {
      const remembered = localStorage.getItem("posDemo.reader");
      el.readerSelect.replaceChildren(
        ...found.map((r) => h("option", { value: r.id, text: r.label || r.id, title: r.serialNumber || null })),
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
el.readerSelect.addEventListener("change", () => updateControls());

el.connectBtn.addEventListener("click", async () => {
  if (!state.terminal || state.connectBusy) return;
  const wasConnected = state.connectionStatus === "connected" && state.connectedReader;
  state.connectBusy = true;
  updateControls();
  try {
    if (wasConnected) {
      await state.terminal.disconnectReader();
      state.connectedReader = null;
      setReaderStatus("not_connected");
      logEvent("disconnectReader", null);
    } else {
      const reader = state.readers.get(el.readerSelect.value);
      if (!reader) throw Object.assign(new Error("Choose a reader first"), { code: "no_reader_selected" });
      setReaderStatus("connecting");
      const connected = await state.terminal.connectReader(reader);
      state.connectedReader = connected || reader;
      localStorage.setItem("posDemo.reader", state.connectedReader.id);
      setReaderStatus("connected");
      logEvent("connectReader", state.connectedReader);
    }
  } catch (err) {
    const e = errorInfo(err);
    if (!wasConnected) {
      state.connectedReader = null;
      setReaderStatus("not_connected");
    }
    el.readerDetail.textContent = `${e.code}: ${e.message}`;
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
  };
  const subs = {
    stored_offline: "Saved on this device; it will be sent automatically when the connection returns.",
    requires_capture: "The card is authorized; capture it from your back office.",
  };
  el.lastResult.dataset.code = "";
  el.lastResult.dataset.paymentId = r.id;
  showResult(r.status, [
    h("div", { class: "result-head" },
      h("span", { class: "result-icon", "aria-hidden": "true", text: r.status === "stored_offline" ? "⇣" : "✓" }),
      h("strong", { class: "result-title", text: titles[r.status] || r.status }),
      h("span", { class: "result-amount", text: formatMoney(r.amount, r.currency) })),
    subs[r.status] ? h("p", { class: "result-sub", text: subs[r.status] }) : null,
    h("dl", { class: "result-grid" },
      h("dt", { text: "Card" }), h("dd", { class: "result-card", text: cardText(r.card) }),
      h("dt", { text: "Payment" }), h("dd", { class: "mono result-id", text: r.id }),
      r.paymentIntentId ? [h("dt", { text: "Intent" }), h("dd", { class: "mono", text: r.paymentIntentId })] : null,
      r.offlineDetails
        ? [h("dt", { text: "Stored" }), h("dd", { text: formatTime(r.offlineDetails.storedAt) })]
        : null),
  ]);
}

function showError(err, context) {
  const e = errorInfo(err);
  el.lastResult.dataset.code = e.code;
  delete el.lastResult.dataset.paymentId;
  const friendly = {
    card_declined: "Card declined",
    collect_canceled: "Payment canceled",
    backend_unreachable: "Payment backend unreachable",
    reader_not_connected: "No reader connected",
    offline_limit_exceeded: "Offline limit reached",
    offline_disabled: "Offline payments are disabled",
    invalid_amount: "Invalid amount",
    invalid_currency: "Invalid currency",
    storage_failed: "Could not store the payment on this device",
  };
  showResult("error", [
    h("div", { class: "result-head" },
      h("span", { class: "result-icon", "aria-hidden": "true", text: "!" }),
      h("strong", { class: "result-title", text: friendly[e.code] || (context ? `${context} failed` : "Error") })),
    h("p", { class: "result-error" },
      h("code", { class: "result-code", text: errorLabel(err) }), ": ", e.message),
  ]);
}

function nextOrderNumber() {
  const n = (parseInt(localStorage.getItem("posDemo.order") || "0", 10) || 0) + 1;
  localStorage.setItem("posDemo.order", String(n));
  return n;
}

async function pay() {
  if (!state.terminal || state.phase !== "idle") return;
  const terminal = state.terminal;
  const amount = amountMinor();
  const currency = el.currency.value;
  const offlineBehavior = el.offlineBehavior.value;
  if (amount <= 0) {
    showError(Object.assign(new Error("Enter an amount on the keypad first"), { code: "invalid_amount" }));
    return;
  }
  state.collectStarted = false;
  state.cancelRequested = false;
  setPhase("collecting", "Preparing reader…");
  let displayed = false;
  try {
    try {
      await terminal.setReaderDisplay({
        lineItems: [{ description: "Sale", amount, quantity: 1 }],
        tax: 0,
        total: amount,
        currency,
      });
      displayed = true;
    } catch (err) {
      // The reader's screen is a convenience; collect reports the real problem if any.
      logEvent("setReaderDisplay failed", errorInfo(err), "warn");
    }
    if (state.cancelRequested) {
      throw Object.assign(new Error("Canceled before the card was requested"), { code: "collect_canceled" });
    }
    setPhase("collecting", `Tap or insert card — ${formatMoney(amount, currency)}`);
    const order = String(nextOrderNumber());
    state.collectStarted = true;
    const collected = await terminal.collectPaymentMethod({
      amount,
      currency,
      offlineBehavior,
      captureMethod: "automatic",
      metadata: { order },
    });
    logEvent("collectPaymentMethod", collected);
    setPhase("processing", "Processing…");
    const result = await terminal.processPayment(collected);
    logEvent("processPayment", result);
    showPaymentResult(result);
    setDigits("");
  } catch (err) {
    logEvent("payment failed", errorInfo(err), "error");
    showError(err, "Payment");
  } finally {
    state.collectStarted = false;
    state.cancelRequested = false;
    if (displayed) {
      // Back to the reader's idle screen before the next sale (bounded: never blocks the till).
      await Promise.race([
        terminal.clearReaderDisplay().catch((err) => logEvent("clearReaderDisplay failed", errorInfo(err), "warn")),
        new Promise((r) => setTimeout(r, 3000)),
      ]);
    }
    setPhase("idle");
    refreshStored();
  }
}

async function cancelCollect() {
  if (!state.terminal || state.phase !== "collecting") return;
  el.cancelBtn.disabled = true;
  el.prompt.textContent = "Canceling…";
  if (!state.collectStarted) {
    // Still preparing the reader's display: pay() stops before asking for the card.
    state.cancelRequested = true;
    return;
  }
  try {
    await state.terminal.cancelCollectPaymentMethod();
  } catch (err) {
    logEvent("cancelCollectPaymentMethod failed", errorInfo(err), "error");
    if (state.phase === "collecting") el.cancelBtn.disabled = false;
  }
}

el.payBtn.addEventListener("click", () => pay());
el.cancelBtn.addEventListener("click", () => cancelCollect());

// ---------------------------------------------------------------------------
// Simulator panel (talks to pos-sim's admin API, not to the SDK)

async function simRequest(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json" } : undefined,
    body: body ? JSON.stringify(body) : undefined,
    cache: "no-store",
  });
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    throw Object.assign(new Error(`${res.status} ${res.statusText}${text ? ` — ${text.slice(0, 200)}` : ""}`), { code: "sim_http_error" });
  }
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

function renderSimNetwork() {
  const down = state.simNetworkDown;
  el.simNetworkToggle.dataset.down = String(down);
  el.simNetworkToggle.textContent = down ? "Restore network" : "Cut network";
  el.simNetworkToggle.classList.toggle("btn-danger-outline", !down);
  el.simNetworkToggle.closest(".sim-grid").querySelector(".field-label").textContent =
    down ? "Backend network: cut (outage)" : "Backend network: reachable";
}

function simMessage(text, level = "info") {
  el.simStatus.textContent = text;
  el.simStatus.dataset.level = level;
}

el.simCardBtn.addEventListener("click", async () => {
  const readerId = state.connectedReader?.id || el.readerSelect.value;
  if (!readerId) {
    simMessage("Pick a reader first.", "error");
    return;
  }
  el.simCardBtn.disabled = true;
  const label = el.simCard.selectedOptions[0]?.textContent || "";
  try {
    await simRequest("POST", `/_sim/readers/${encodeURIComponent(readerId)}/card`, { number: el.simCard.value });
    simMessage(`${readerId} will present ${label.split(" — ")[0]} on the next tap.`);
  } catch (err) {
    const e = errorInfo(err);
    simMessage(`Could not set the test card — ${e.code}: ${e.message}`, "error");
  } finally {
    el.simCardBtn.disabled = false;
  }
});

el.simNetworkToggle.addEventListener("click", async () => {
  el.simNetworkToggle.disabled = true;
  const down = !state.simNetworkDown;
  try {
    const now = await simRequest("POST", "/_sim/network", { down });
    state.simNetworkDown = typeof now?.down === "boolean" ? now.down : down;
    renderSimNetwork();
    simMessage(down ? "Backend network cut: payments will be stored offline." : "Backend network restored.");
  } catch (err) {
    const e = errorInfo(err);
    simMessage(`Could not change the network — ${e.code}: ${e.message}`, "error");
  } finally {
    el.simNetworkToggle.disabled = false;
  }
});

async function syncSimNetworkState() {
  // GET /_sim/network → { down, latency_ms }; the switch may also be flipped by other tools.
  try {
    const res = await fetch("/_sim/network", { cache: "no-store" });
    if (res.ok && (res.headers.get("content-type") || "").includes("json")) {
      const j = await res.json();
      if (typeof j?.down === "boolean") state.simNetworkDown = j.down;
    }
  } catch {
    /* keep the last known state */
  }
  if (!el.simNetworkToggle.disabled) renderSimNetwork();
}

// ---------------------------------------------------------------------------
// Configuration + start-up

async function loadConfig() {
  try {
    const res = await fetch("/_sim/config", { cache: "no-store" });
    if (res.ok) {
      const j = await res.json();
      if (j && j.backend_url) {
        return {
          backendUrl: String(j.backend_url).replace(/\/+$/, ""),
          readerUrls: (j.readers || []).map((r) => r.url).filter(Boolean),
          sim: true,
        };
      }
    }
  } catch {
    /* not running under pos-sim */
  }
  const q = new URLSearchParams(location.search);
  const backend = q.get("backend");
  if (backend) {
    return {
      backendUrl: backend.replace(/\/+$/, ""),
      readerUrls: (q.get("readers") || "").split(",").map((s) => s.trim()).filter(Boolean),
      sim: false,
    };
  }
  return null;
}

function showConfigError(html) {
  el.configError.innerHTML = html;
  el.configError.hidden = false;
}

function numberParam(name) {
  const v = new URLSearchParams(location.search).get(name);
  const n = v == null ? NaN : Number(v);
  return Number.isFinite(n) && n > 0 ? n : undefined;
}

async function start() {
  renderAmount();
  updateControls();

  const config = await loadConfig();
  if (!config) {
    showConfigError(
      "<strong>No payment backend configured.</strong> Open this page from <code>pos-sim</code> " +
        "(<code>cargo xtask demo</code>), or add <code>?backend=https://…&amp;readers=wss://…,wss://…</code> to the URL.",
    );
    setNetworkStatus("unknown");
    throw Object.assign(new Error("no backend configured"), { code: "no_config" });
  }
  state.config = config;

  let sdk;
  try {
    sdk = await import(SDK_URL);
    await sdk.default();
  } catch (err) {
    showConfigError(`<strong>The payment SDK could not be loaded</strong> from <code>${SDK_URL}</code>: ${escapeHtml(String(err?.message || err))}`);
    throw err;
  }

  const { backendUrl } = config;
  const options = {
    backendUrl,
    fetchConnectionToken: async () => {
      const res = await fetch(`${backendUrl}/v1/connection_tokens`, { method: "POST" });
      if (!res.ok) throw new Error(`connection token request failed: HTTP ${res.status}`);
      return (await res.json()).secret;
    },
    offline: {
      enabled: true,
      transactionLimit: { usd: 50000, eur: 50000, gbp: 50000, cad: 50000 },
      storedAmountLimit: { usd: 500000, eur: 500000, gbp: 500000, cad: 500000 },
      maxStoredPayments: 500,
    },
    onNetworkStatusChange(status) {
      logEvent("onNetworkStatusChange", status);
      setNetworkStatus(status);
      if (state.config?.sim) syncSimNetworkState();
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
      refreshStored();
    },
    onForwardingFailure(failure) {
      logEvent("onForwardingFailure", failure, "error");
      refreshStored();
    },
    onUnexpectedReaderDisconnect(error) {
      logEvent("onUnexpectedReaderDisconnect", error, "error");
      state.connectedReader = null;
      setReaderStatus("not_connected");
      el.readerDetail.textContent = `Reader disconnected — ${errorLabel(error)}`;
    },
    onConnectionStatusChange(status) {
      logEvent("onConnectionStatusChange", status);
      if (status !== "connected" && state.connectionStatus === "connected" && !state.connectBusy) {
        state.connectedReader = null;
      }
      setReaderStatus(status);
    },
    onPaymentStatusChange(status) {
      logEvent("onPaymentStatusChange", status);
      el.paymentStatus.dataset.status = status;
      el.paymentStatus.textContent =
        { not_ready: "Not ready", ready: "Ready", waiting_for_input: "Waiting for card", processing: "Processing" }[status] || status;
    },
  };
  const db = new URLSearchParams(location.search).get("db");
  if (db) options.databaseName = db;
  const timeout = numberParam("requestTimeoutMs");
  if (timeout) options.requestTimeoutMs = timeout;
  const interval = numberParam("forwardIntervalMs");
  if (interval) options.forwardIntervalMs = interval;

  try {
    state.terminal = await sdk.Terminal.create(options);
  } catch (err) {
    const e = errorInfo(err);
    showConfigError(`<strong>The terminal could not start</strong> — <code>${escapeHtml(e.code)}</code>: ${escapeHtml(e.message)}`);
    throw err;
  }
  window.posDemo.terminal = state.terminal;
  logEvent("Terminal.create", { backendUrl, readers: config.readerUrls.length, simulator: config.sim });

  if (config.sim) {
    el.simPanel.hidden = false;
    await syncSimNetworkState();
    setInterval(syncSimNetworkState, 3000);
  }

  updateControls();
  await Promise.all([refreshStored(), discover()]);
}

function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

window.addEventListener("pagehide", () => {
  // Release the reader socket and the forwarding lock promptly; the SDK keeps the data.
  try {
    state.terminal?.close()?.catch?.(() => {});
  } catch {
    /* closing is best-effort */
  }
});

start().then(
  () => resolveReady(true),
  (err) => {
    logEvent("startup failed", errorInfo(err), "error");
    if (!state.terminal) {
      el.networkText.textContent = "Payments unavailable — see the message below";
      el.readerSelect.replaceChildren(h("option", { value: "", text: "Unavailable" }));
    }
    updateControls();
    rejectReady(err);
  },
);
