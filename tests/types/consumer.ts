// A POS written against the package's declarations; `cargo xtask test` compiles it with
// `tsc --strict`. Each `@ts-expect-error` line must stay an error: it proves the types are
// precise (an `any` there would make tsc report an unused directive).
import init, {
  Terminal,
  forwardStoredPayments,
  type CaptureResult,
  type CollectedPayment,
  type ForwardReport,
  type OfflineStatus,
  type PaymentResult,
  type PosTerminalError,
  type Reader,
  type StoredPayment,
} from "pos-terminal";

export async function cashier(backendUrl: string): Promise<void> {
  await init();
  const terminal: Terminal = await Terminal.create({
    backendUrl,
    fetchConnectionToken: async () => "token",
    offline: { transactionLimit: { usd: 50_000 }, maxStoredPayments: 100 },
    onNetworkStatusChange: (s) => {
      const known: "online" | "offline" | "unknown" = s;
      void known;
    },
    onOfflineStatusChange: (s: OfflineStatus) => void s.pendingAmounts["usd"],
    onPaymentForwarded: (p: StoredPayment) => void p.paymentIntentId,
    onForwardingFailure: (f) => {
      const decline: string | null = f.declineCode;
      void [decline, f.payment.state, f.code];
    },
    onUnexpectedReaderDisconnect: (e: PosTerminalError) => void e.code,
  });

  const readers: Reader[] = await terminal.discoverReaders({ method: "websocket", urls: ["ws://r"] });
  const reader: Reader = await terminal.connectReader(readers[0]);
  void reader.serialNumber;
  const usb: Reader[] = await terminal.discoverReaders({ method: "usb", requestPermission: false, filters: [{ vendorId: 0x1209 }] });
  if (usb[0]?.status === "in_use") await terminal.connectReader(usb[0], { takeOver: true });
  const [simulated] = await terminal.discoverReaders({ method: "simulated" });
  const method: "websocket" | "usb" | "simulated" = simulated.method;
  void method;
  terminal.setSimulatorConfiguration({ testCardNumber: "4000000000000002", tapDelayMs: 100 });
  terminal.setSimulatorConfiguration({ entryMode: "contactless", pinVerified: false, country: "FR" });
  // @ts-expect-error: an entry mode is chip, contactless or swipe
  terminal.setSimulatorConfiguration({ entryMode: "tap" });
  // @ts-expect-error: a reader's status is "online" or "in_use"
  const busy: "busy" = reader.status;
  void busy;
  await terminal.setReaderDisplay({ lineItems: [{ description: "Tea", amount: 450, quantity: 1 }], total: 450, currency: "usd" });

  const collected: CollectedPayment = await terminal.collectPaymentMethod({
    amount: 450,
    currency: "usd",
    offlineBehavior: "prefer_online",
    metadata: { order: "42" },
  });
  const last4: string = collected.card.last4;
  void last4;
  const result: PaymentResult = await terminal.processPayment(collected);
  if (result.status === "stored_offline" && result.offlineDetails) {
    const at: number = result.offlineDetails.storedAt;
    void at;
  }

  const captured: CaptureResult = await terminal.capturePayment(result.id);
  const state: "succeeded" | "requires_capture" | "canceled" = captured.status;
  const intent: string = (await terminal.cancelPayment(collected.id)).paymentIntentId;
  void [state, intent];
  // @ts-expect-error: a capture result's status is never "stored_offline"
  const never: "stored_offline" = captured.status;
  void never;

  const all: StoredPayment[] = await terminal.listStoredPayments();
  const lastHeard: "succeeded" | "requires_capture" | "canceled" | null = all[0]?.paymentStatus ?? null;
  void lastHeard;
  const pending: StoredPayment[] = await terminal.listStoredPayments({ state: "pending" });
  const report: ForwardReport = await terminal.forwardStoredPayments();
  const fromWorker: ForwardReport = await forwardStoredPayments({ databaseName: "pos-terminal" });
  void [all, pending, report.remaining, fromWorker.forwarded];

  // @ts-expect-error: an unknown offline behavior is refused by the types
  await terminal.collectPaymentMethod({ amount: 1, currency: "usd", offlineBehavior: "sometimes" });
  // @ts-expect-error: a stored state is one of the six names
  await terminal.listStoredPayments({ state: "lost" });
  // @ts-expect-error: the result's status is a string union, not a number
  const wrong: number = result.status;
  void wrong;
  await terminal.close();
}
