// format.js — display helpers for the demo page: money in minor units, times, card
// summaries, SDK values as plain JSON for the log, and a tiny DOM builder.

// WebKitGTK reports the POSIX locale as is ("C" under LANG=C.UTF-8), which is no BCP 47 tag
// and makes every Intl formatter throw: fall back to en-US for anything Intl refuses.
export const LOCALE = (() => {
  try {
    return Intl.getCanonicalLocales(navigator.language || "en-US")[0] ?? "en-US";
  } catch {
    return "en-US";
  }
})();

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

export function formatMoney(amount, currency) {
  const f = formatter(currency);
  const n = Number(amount) || 0;
  if (!f) return `${(n / 100).toFixed(2)} ${String(currency || "").toUpperCase()}`;
  return f.format(n / 10 ** minorDigits(currency));
}

/** Sums per currency (object or Map) as "$36.00 + €12.00". */
export function formatAmounts(amounts) {
  const entries = amounts instanceof Map ? [...amounts.entries()] : Object.entries(amounts || {});
  return entries
    .filter(([, v]) => Number(v) > 0)
    .map(([cur, v]) => formatMoney(v, cur))
    .join(" + ");
}

export function formatTime(ms, { seconds = true } = {}) {
  if (ms == null) return "—";
  const d = new Date(Number(ms));
  if (Number.isNaN(d.getTime())) return "—";
  const sameDay = d.toDateString() === new Date().toDateString();
  return sameDay
    ? d.toLocaleTimeString(LOCALE, { hour: "numeric", minute: "2-digit", ...(seconds ? { second: "2-digit" } : {}) })
    : d.toLocaleString(LOCALE, { dateStyle: "short", timeStyle: "short" });
}

export function formatFullTime(ms) {
  if (ms == null) return null;
  const d = new Date(Number(ms));
  return Number.isNaN(d.getTime()) ? null : d.toLocaleString(LOCALE, { dateStyle: "medium", timeStyle: "medium" });
}

/**
 * "Visa ••••4242". A card the SDK does not know (a payment the reader reported after a
 * reload: brand "unknown", last4 "", expiry 0/0) is "card unknown": no empty digits, no 0/0.
 */
export function cardText(card) {
  if (!card) return "—";
  const brand = card.brand && card.brand !== "unknown" ? titleCase(card.brand) : "";
  if (!brand && !card.last4) return "card unknown";
  return card.last4 ? `${brand || "Card"} ••••${card.last4}` : brand;
}

function titleCase(s) {
  const special = { amex: "Amex", visa: "Visa", mastercard: "Mastercard", jcb: "JCB", unionpay: "UnionPay", interac: "Interac" };
  const k = String(s).toLowerCase();
  return special[k] || k.charAt(0).toUpperCase() + k.slice(1);
}

export function shortId(id) {
  if (!id) return "";
  const s = String(id);
  return s.length > 14 ? `${s.slice(0, 6)}…${s.slice(-6)}` : s;
}

/** Deep-converts SDK values (Maps, Errors, BigInts) into plain JSON-friendly data. */
export function plain(value, depth = 0) {
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

export function h(tag, attrs = {}, ...children) {
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

export function escapeHtml(s) {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}
