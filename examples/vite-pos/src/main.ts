// The page of a team's POS: create the Terminal, take a payment, and hand forwarding over to
// the service worker (src/sw.ts) through Background Sync when a payment is stored offline.
import init, { Terminal } from "pos-terminal";
import type { ForwardReport, PaymentResult, StoredPayment, TerminalOptions } from "pos-terminal";

/** The tag src/sw.ts forwards on (the default database). */
const FORWARD_SYNC_TAG = "pos-terminal-forward";

/** Background Sync is Chromium-only and not in TypeScript's DOM library. */
interface SyncManager {
  register(tag: string): Promise<void>;
}
type SyncRegistration = ServiceWorkerRegistration & { sync?: SyncManager };

function byId<T extends HTMLElement>(id: string, type: { new (): T }): T {
  const el = document.getElementById(id);
  if (!(el instanceof type)) throw new Error(`#${id} is missing`);
  return el;
}

const statusEl = byId("status", HTMLParagraphElement);
const chargeBtn = byId("charge", HTMLButtonElement);
const resultEl = byId("result", HTMLParagraphElement);

async function registerWorker(): Promise<SyncRegistration | null> {
  if (!("serviceWorker" in navigator)) return null;
  return navigator.serviceWorker.register("/sw.js", { type: "module" });
}

async function requestForward(registration: SyncRegistration | null): Promise<void> {
  // Without Background Sync (Firefox, Safari) the Terminal keeps forwarding from the page.
  await registration?.sync?.register(FORWARD_SYNC_TAG);
}

function describe(result: PaymentResult): string {
  const card = `${result.card.brand} ••••${result.card.last4}`;
  return result.status === "stored_offline"
    ? `Stored offline (${card}); it is sent when the backend is reachable.`
    : `${result.status} (${card}), payment intent ${result.paymentIntentId ?? "—"}`;
}

async function main(): Promise<void> {
  await init();
  const backendUrl = new URLSearchParams(location.search).get("backend") ?? "https://pos.example.com";
  const options: TerminalOptions = {
    backendUrl,
    fetchConnectionToken: async (): Promise<string> => {
      const res = await fetch("/connection_token", { method: "POST" });
      const body: unknown = await res.json();
      if (typeof body === "object" && body !== null && "secret" in body && typeof body.secret === "string") {
        return body.secret;
      }
      throw new Error("connection token response without a secret");
    },
    onPaymentForwarded: (p: StoredPayment) => {
      statusEl.textContent = `Forwarded ${p.id}: ${p.paymentIntentId ?? ""}`;
    },
  };
  const terminal = await Terminal.create(options);
  const registration = await registerWorker();

  const [reader] = await terminal.discoverReaders({ method: "websocket", urls: ["wss://reader-1.local/"] });
  if (reader) await terminal.connectReader(reader);
  chargeBtn.disabled = false;
  statusEl.textContent = reader ? `Reader ${reader.id} connected` : "No reader found";

  chargeBtn.addEventListener("click", async () => {
    const collected = await terminal.collectPaymentMethod({ amount: 1250, currency: "usd" });
    const result = await terminal.processPayment(collected);
    resultEl.textContent = describe(result);
    if (result.status === "stored_offline") await requestForward(registration);
  });

  const report: ForwardReport = await terminal.forwardStoredPayments();
  console.info(`forwarded ${report.forwarded}, ${report.remaining} remaining`);
}

main().catch((err: unknown) => {
  statusEl.textContent = err instanceof Error ? err.message : String(err);
});
