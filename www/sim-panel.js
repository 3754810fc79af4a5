// sim-panel.js — the simulator's test controls. NOT part of the SDK and not something to
// copy: it talks to pos-sim's admin endpoints (/_sim/*) to present test cards on the fake
// readers and to cut the backend's network. A production page has none of this.

/** The backend and reader URLs pos-sim serves the page with, or null when not under pos-sim. */
/**
 * pos-sim's configuration, or null. Bounded by `timeoutMs`: a server (or an uplink) that
 * accepts and never answers must not keep the POS from opening with its saved configuration.
 */
export async function loadSimConfig(timeoutMs = 5000) {
  try {
    const res = await fetch("/_sim/config", { cache: "no-store", signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return null;
    const j = await res.json();
    if (!j?.backend_url) return null;
    return {
      backendUrl: String(j.backend_url).replace(/\/+$/, ""),
      readerUrls: (j.readers || []).map((r) => r.url).filter(Boolean),
      // pos-sim's own readers: the only ids its /_sim/readers/{id} endpoints know.
      simReaderIds: (j.readers || []).map((r) => r.id).filter(Boolean),
    };
  } catch {
    return null; // not running under pos-sim
  }
}

async function simRequest(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: body ? { "content-type": "application/json" } : undefined,
    body: body ? JSON.stringify(body) : undefined,
    cache: "no-store",
  });
  if (!res.ok) {
    const text = await res.text().catch(() => "");
    throw new Error(`HTTP ${res.status} ${res.statusText}${text ? ` — ${text.slice(0, 200)}` : ""}`);
  }
  const type = res.headers.get("content-type") || "";
  return type.includes("json") ? res.json() : res.text();
}

/**
 * Shows the panel and wires its buttons. `readerId()` names the reader a test card goes to;
 * `inPageReader()` is true when that reader is the SDK's in-page simulated reader, which is
 * not one of pos-sim's: its test card goes to `setInPageCard(number, entryMode)` (the SDK's
 * setSimulatorConfiguration). `offlineStorage()` is the page's offline storage switch.
 * `simReaderIds` are pos-sim's readers: another id (a USB reader) is never asked about.
 * Returns { sync() } to re-read the network switch (other tools may flip it too).
 */
export function mountSimPanel({ readerId, inPageReader = () => false, setInPageCard, offlineStorage = () => "sdk", simReaderIds = [] }) {
  const byId = (id) => document.getElementById(id);
  const el = {
    panel: byId("sim-panel"),
    card: byId("sim-card"),
    cardBtn: byId("sim-card-btn"),
    networkToggle: byId("sim-network-toggle"),
    networkLabel: byId("sim-network-label"),
    status: byId("sim-status"),
    entry: byId("sim-entry"),
    readerLinkToggle: byId("sim-reader-link-toggle"),
    readerLinkLabel: byId("sim-reader-link-label"),
    reboot: byId("sim-reader-reboot"),
  };
  let networkDown = false;
  // null until pos-sim said, for the reader picked (none picked: unknown, not "reachable").
  let readerLinkDown = null;
  const isSimReader = (id) => simReaderIds.includes(id);

  function renderReaderLink() {
    el.readerLinkToggle.dataset.down = readerLinkDown === null ? "unknown" : String(readerLinkDown);
    el.readerLinkToggle.textContent = readerLinkDown ? "Restore reader link" : "Cut reader link";
    el.readerLinkLabel.textContent =
      readerLinkDown === null
        ? inPageReader()
          ? "Reader's own link: none (the in-page simulated reader)"
          : readerId() && !isSimReader(readerId())
            ? "Reader's own link: not one of pos-sim's readers"
            : "Reader's own link: pick a reader to see it"
        : readerLinkDown
          ? "Reader's own link: cut"
          : "Reader's own link: reachable";
  }

  function renderNetwork() {
    el.networkToggle.dataset.down = String(networkDown);
    el.networkToggle.textContent = networkDown ? "Restore network" : "Cut network";
    el.networkToggle.classList.toggle("btn-danger-outline", !networkDown);
    el.networkLabel.textContent = networkDown ? "Backend network: cut (outage)" : "Backend network: reachable";
  }

  function message(text, level = "info") {
    el.status.textContent = text;
    el.status.dataset.level = level;
  }

  el.cardBtn.addEventListener("click", async () => {
    const id = readerId();
    if (!id) {
      message("Pick a reader first.", "error");
      return;
    }
    el.cardBtn.disabled = true;
    const label = el.card.selectedOptions[0]?.textContent || "";
    try {
      const entry = el.entry.value;
      if (inPageReader()) {
        // The SDK's own simulated reader keeps this card for every later tap.
        setInPageCard(el.card.value, entry);
        message(`The in-page simulated reader presents ${label.split(" — ")[0]} (${entry}) on every tap from now on.`);
        return;
      }
      await simRequest("POST", `/_sim/readers/${encodeURIComponent(id)}/card`, { number: el.card.value, entry });
      message(`${id} will present ${label.split(" — ")[0]} (${entry}) on the next tap.`);
    } catch (err) {
      message(`Could not set the test card — ${err.message}`, "error");
    } finally {
      el.cardBtn.disabled = false;
    }
  });

  el.networkToggle.addEventListener("click", async () => {
    el.networkToggle.disabled = true;
    const down = !networkDown;
    try {
      const now = await simRequest("POST", "/_sim/network", { down });
      networkDown = typeof now?.down === "boolean" ? now.down : down;
      renderNetwork();
      message(down ? "This device's backend network cut: payments go through the reader's own link if it has one, else are stored offline." : "Backend network restored.");
    } catch (err) {
      message(`Could not change the network — ${err.message}`, "error");
    } finally {
      el.networkToggle.disabled = false;
    }
  });

  /** The link and reboot buttons drive pos-sim's readers only. */
  function posSimReader() {
    const id = readerId();
    if (!id) message("Pick a reader first.", "error");
    else if (inPageReader()) message("The in-page simulated reader has no link of its own and cannot be rebooted: pick one of pos-sim's readers.", "error");
    else if (!isSimReader(id)) message(`${id} is not one of pos-sim's readers: pick one of them.`, "error");
    else return id;
    return null;
  }

  el.readerLinkToggle.addEventListener("click", async () => {
    const id = posSimReader();
    if (!id) return;
    el.readerLinkToggle.disabled = true;
    const down = !readerLinkDown;
    try {
      const now = await simRequest("POST", `/_sim/readers/${encodeURIComponent(id)}/network`, { down });
      readerLinkDown = now?.link ? now.link === "offline" : down;
      renderReaderLink();
      message(down ? readerLinkCutText(id) : `${id}'s own link restored: it forwards what it stored.`);
    } catch (err) {
      message(`Could not change the reader's link — ${err.message}`, "error");
    } finally {
      el.readerLinkToggle.disabled = false;
    }
  });

  /** What a cut reader link means under the page's offline storage switch. */
  function readerLinkCutText(id) {
    return offlineStorage() === "reader"
      ? `${id}'s own link cut: payments go through this device's link; with that cut too, the reader stores them (offline storage "Reader").`
      : `${id}'s own link cut: payments go through this device's link; with that cut too, this device stores them (offline storage "SDK").`;
  }

  el.reboot.addEventListener("click", async () => {
    const id = posSimReader();
    if (!id) return;
    el.reboot.disabled = true;
    try {
      await simRequest("POST", `/_sim/readers/${encodeURIComponent(id)}/reboot`);
      message(`${id} is rebooting: its stored payments survive, the POS reconnects by itself.`);
    } catch (err) {
      message(`Could not reboot the reader — ${err.message}`, "error");
    } finally {
      el.reboot.disabled = false;
    }
  });

  async function syncReader() {
    const id = readerId();
    // Only pos-sim's readers are polled (a USB reader's id would answer 404 every time).
    if (!id || inPageReader() || !isSimReader(id)) {
      readerLinkDown = null;
      if (!el.readerLinkToggle.disabled) renderReaderLink();
      return;
    }
    if (id !== syncedReader) readerLinkDown = null;
    syncedReader = id;
    try {
      const res = await fetch(`/_sim/readers/${encodeURIComponent(id)}`, { cache: "no-store" });
      if (res.ok && (res.headers.get("content-type") || "").includes("json")) {
        const j = await res.json();
        if (typeof j?.link === "string") readerLinkDown = j.link === "offline";
      }
    } catch {
      /* keep the last known state */
    }
    if (!el.readerLinkToggle.disabled) renderReaderLink();
  }

  let syncedReader = null;

  async function sync() {
    await syncReader();
    // GET /_sim/network → { down, latency_ms }
    try {
      const res = await fetch("/_sim/network", { cache: "no-store" });
      if (res.ok && (res.headers.get("content-type") || "").includes("json")) {
        const j = await res.json();
        if (typeof j?.down === "boolean") networkDown = j.down;
      }
    } catch {
      /* keep the last known state */
    }
    if (!el.networkToggle.disabled) renderNetwork();
  }

  el.panel.hidden = false;
  setInterval(sync, 3000);
  return { sync };
}
