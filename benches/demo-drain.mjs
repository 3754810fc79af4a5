// The demo POS as a cashier sees a drain (not part of `cargo xtask bench`'s table): N
// payments stored offline through the demo page's own terminal and the pos-sim reader, the
// network back, "Forward now" pressed, timed until the page's pending count reads 0. The
// page's own work (its events, the stored-payments table) runs on the thread the SDK
// forwards on, so this is the drain rate a page like the demo gets, beside the bench's
// bare `forwardStoredPayments()`.
//
//   cargo xtask build && node benches/demo-drain.mjs [N]     (default 150; starts its own pos-sim)

import { startSim, launchBrowser, waitReady, connectReader, setNetwork, presentCard } from "../tests/e2e/helpers.mjs";

const N = Number(process.argv[2] || 150);
const sim = await startSim({ readers: 1 });
const browser = await launchBrowser();
try {
  const { page } = browser;
  await page.goto(sim.url, { waitUntil: "load" });
  await waitReady(page);
  await connectReader(page, "rdr_sim_1");
  await setNetwork(sim, true);
  for (let i = 0; i < N; i++) {
    await presentCard(sim, "rdr_sim_1", "4242424242424242");
    const status = await page.evaluate(async () => {
      const t = window.posDemo.terminal;
      const c = await t.collectPaymentMethod({ amount: 1000, currency: "usd", offlineBehavior: "force_offline" });
      return (await t.processPayment(c)).status;
    });
    if (status !== "stored_offline") throw new Error(`payment ${i}: ${status}`);
  }
  const count = () => document.querySelector("#pending-count").textContent.trim();
  await page.waitForFunction((n) => document.querySelector("#pending-count").textContent.trim() === String(n), N, { timeout: 30_000 });
  await setNetwork(sim, false);
  const t0 = Date.now();
  await page.click("#forward-btn");
  await page.waitForFunction(() => document.querySelector("#pending-count").textContent.trim() === "0", null, { timeout: 300_000 });
  const ms = Date.now() - t0;
  const report = await page.$eval("#forward-report", (e) => e.textContent);
  console.log(`demo drain of ${N}: ${(ms / 1000).toFixed(2)} s, ${(N / (ms / 1000)).toFixed(1)} payments/s (${report}); pending count ${await page.evaluate(count)}`);
} finally {
  await browser.close();
  await sim.stop();
}
