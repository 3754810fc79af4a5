// A fake WebUSB reader for tests and the demo's "simulate USB" switch — never part of the npm
// package. It stands in for `navigator.usb` and one or more USBDevices whose bulk endpoints
// carry the reader protocol (4-byte big-endian length + UTF-8 JSON) and bridges every frame
// to a pos-sim reader over its WebSocket, so the SDK's real USB framing code talks to the same
// simulated reader as the WebSocket transport.
//
// Knobs: `maxTransfer` (bytes per transferIn at most: small values split frames across
// transfers), `batchMs` (wait this long after data arrives before answering a transferIn:
// several frames then travel in one transfer), `protectedInterface` (claimInterface fails
// with SecurityError, as for a protected class). `unplug()` / `plug()` fire `disconnect` /
// `connect` on the fake `navigator.usb`. `stats` counts split frames and joined transfers.

const VENDOR_ID = 0x1209;
const PRODUCT_ID = 0x0001;
const BULK_IN = 1;
const BULK_OUT = 2;

const domError = (name, message) => new DOMException(message, name);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function frameBytes(text) {
  const body = new TextEncoder().encode(text);
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, body.length, false);
  out.set(body, 4);
  return out;
}

export class FakeUsbDevice {
  constructor(usb, { wsUrl, serialNumber, productName = "Fake USB reader", maxTransfer = Infinity, batchMs = 0, protectedInterface = false }) {
    this._usb = usb;
    this._wsUrl = wsUrl;
    this.vendorId = VENDOR_ID;
    this.productId = PRODUCT_ID;
    this.serialNumber = serialNumber;
    this.productName = productName;
    this.manufacturerName = "pos-terminal tests";
    this.deviceVersionMajor = 1;
    this.deviceVersionMinor = 0;
    this.deviceVersionSubminor = 0;
    this.opened = false;
    this.configuration = null;
    const endpoints = [
      { endpointNumber: BULK_IN, direction: "in", type: "bulk", packetSize: 64 },
      { endpointNumber: BULK_OUT, direction: "out", type: "bulk", packetSize: 64 },
    ];
    const alternate = { alternateSetting: 0, interfaceClass: 0xff, interfaceSubclass: 0, interfaceProtocol: 0, interfaceName: "reader", endpoints };
    this._config = { configurationValue: 1, configurationName: "reader", interfaces: [{ interfaceNumber: 0, alternate, alternates: [alternate], claimed: false }] };
    this.configurations = [this._config];
    this.maxTransfer = maxTransfer;
    this.batchMs = batchMs;
    this.protectedInterface = protectedInterface;
    this.plugged = true;
    this.stats = { transfersIn: 0, framesOut: 0, splitFrames: 0, joinedTransfers: 0, framesIn: 0 };
    this._reset();
  }

  _reset() {
    this._ws = null;
    this._queue = []; // frames to the SDK: { bytes, offset }
    this._waiter = null; // a pending transferIn's resolve/reject
    this._out = new Uint8Array(0); // bytes from the SDK not yet a whole frame
    this._broken = null; // why transfers fail until the device is reopened
  }

  _fail(err) {
    this._broken = err;
    if (this._waiter) {
      const w = this._waiter;
      this._waiter = null;
      w.reject(err);
    }
  }

  async open() {
    if (!this.plugged) throw domError("NotFoundError", "The device was disconnected.");
    if (this.opened) return;
    this._reset();
    const ws = new WebSocket(this._wsUrl);
    await new Promise((resolve, reject) => {
      ws.onopen = resolve;
      ws.onerror = () => reject(domError("NetworkError", "Unable to open device."));
    });
    ws.onmessage = (e) => {
      if (this._ws !== ws) return; // a frame still in flight on a socket closed since
      this._queue.push({ bytes: frameBytes(String(e.data)), offset: 0 });
      this._wake();
    };
    // The reader behind the cable went away (killed, took over elsewhere): transfers fail.
    ws.onclose = () => {
      if (this._ws === ws) this._fail(domError("NetworkError", "A transfer error has occurred."));
    };
    this._ws = ws;
    this.opened = true;
  }

  async close() {
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close();
    this._fail(domError("AbortError", "The transfer was cancelled."));
    this.opened = false;
    this.configuration = null;
    this._config.interfaces[0].claimed = false;
  }

  async selectConfiguration(value) {
    this._check();
    if (value !== 1) throw domError("NotFoundError", "The configuration value provided is not supported by the device.");
    this.configuration = this._config;
  }

  async claimInterface(number) {
    this._check();
    if (!this.configuration) throw domError("InvalidStateError", "The device must have a configuration selected.");
    if (this.protectedInterface) throw domError("SecurityError", "The requested interface implements a protected class.");
    if (number !== 0) throw domError("NotFoundError", "The interface number provided is not supported by the device in its current configuration.");
    this._config.interfaces[0].claimed = true;
  }

  async releaseInterface() {
    this._config.interfaces[0].claimed = false;
  }

  _check() {
    if (!this.plugged) throw domError("NotFoundError", "The device was disconnected.");
    if (!this.opened) throw domError("InvalidStateError", "The device must be opened first.");
  }

  _wake() {
    if (this._waiter && this._queue.length) {
      const w = this._waiter;
      this._waiter = null;
      w.resolve();
    }
  }

  async transferIn(endpoint, length) {
    this._check();
    if (endpoint !== BULK_IN) throw domError("NotFoundError", "The specified endpoint is not part of a claimed and selected alternate interface.");
    if (this._broken) throw this._broken;
    if (!this._queue.length) {
      await new Promise((resolve, reject) => {
        this._waiter = { resolve, reject };
      });
    }
    if (this.batchMs) await sleep(this.batchMs);
    if (this._broken) throw this._broken;
    const max = Math.min(length, this.maxTransfer);
    const chunks = [];
    let size = 0;
    let ended = 0;
    while (this._queue.length && size < max) {
      const f = this._queue[0];
      const take = Math.min(max - size, f.bytes.length - f.offset);
      chunks.push(f.bytes.subarray(f.offset, f.offset + take));
      if (f.offset > 0 || take < f.bytes.length) f.split = true;
      f.offset += take;
      size += take;
      if (f.offset === f.bytes.length) {
        this._queue.shift();
        ended += 1;
        this.stats.framesOut += 1;
        if (f.split) this.stats.splitFrames += 1;
      }
    }
    const data = new Uint8Array(size);
    let at = 0;
    for (const c of chunks) {
      data.set(c, at);
      at += c.length;
    }
    this.stats.transfersIn += 1;
    if (ended > 1) this.stats.joinedTransfers += 1;
    return { status: "ok", data: new DataView(data.buffer) };
  }

  async transferOut(endpoint, data) {
    this._check();
    if (endpoint !== BULK_OUT) throw domError("NotFoundError", "The specified endpoint is not part of a claimed and selected alternate interface.");
    if (this._broken) throw this._broken;
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data.buffer ?? data);
    const joined = new Uint8Array(this._out.length + bytes.length);
    joined.set(this._out, 0);
    joined.set(bytes, this._out.length);
    let rest = joined;
    while (rest.length >= 4) {
      const len = new DataView(rest.buffer, rest.byteOffset).getUint32(0, false);
      if (rest.length < 4 + len) break;
      const text = new TextDecoder().decode(rest.subarray(4, 4 + len));
      this.stats.framesIn += 1;
      if (this._ws && this._ws.readyState === WebSocket.OPEN) this._ws.send(text);
      rest = rest.subarray(4 + len);
    }
    this._out = rest.slice();
    return { status: "ok", bytesWritten: bytes.length };
  }

  /** Pulls the cable: pending and later transfers fail, `disconnect` fires. */
  unplug() {
    if (!this.plugged) return;
    this.plugged = false;
    const ws = this._ws;
    this._ws = null;
    if (ws) ws.close();
    this._fail(domError("NotFoundError", "The device was disconnected."));
    this.opened = false;
    this._usb._event("disconnect", this);
  }

  /** Plugs the cable back in. */
  plug() {
    if (this.plugged) return;
    this.plugged = true;
    this._reset();
    this._usb._event("connect", this);
  }
}

/** The fake `navigator.usb`. */
export class FakeUsb extends EventTarget {
  constructor() {
    super();
    this.devices = [];
    /** What `requestDevice` does: "grant", "cancel" (user closed the chooser), "no_gesture". */
    this.requestResult = "grant";
    this.onconnect = null;
    this.ondisconnect = null;
  }

  addDevice(options) {
    const device = new FakeUsbDevice(this, options);
    this.devices.push(device);
    return device;
  }

  _event(type, device) {
    const e = new Event(type);
    e.device = device;
    this.dispatchEvent(e);
  }

  async getDevices() {
    return this.devices.filter((d) => d.plugged && d._permitted);
  }

  async requestDevice({ filters } = {}) {
    if (this.requestResult === "no_gesture") throw domError("SecurityError", "Must be handling a user gesture to show a permission request.");
    const match = this.devices.find((d) => d.plugged && (filters || []).some((f) => f.vendorId === d.vendorId && (f.productId === undefined || f.productId === d.productId)));
    if (this.requestResult === "cancel" || !match) throw domError("NotFoundError", "No device selected.");
    match._permitted = true;
    return match;
  }
}

/** Replaces `navigator.usb` with a fake (once per page) and returns it. */
export function installFakeUsb() {
  if (!(navigator.usb instanceof FakeUsb)) {
    Object.defineProperty(navigator, "usb", { value: new FakeUsb(), configurable: true });
  }
  return navigator.usb;
}

/** Removes `navigator.usb` entirely, as in Firefox or Safari. */
export function removeUsb() {
  Object.defineProperty(navigator, "usb", { value: undefined, configurable: true });
}

/** A fake USB reader bridged to the pos-sim reader at `wsUrl`, already permitted. */
export function fakeUsbReader(wsUrl, serialNumber, options) {
  options = options || {};
  const device = installFakeUsb().addDevice({ wsUrl, serialNumber, ...options });
  device._permitted = options.permitted ?? true;
  return device;
}
