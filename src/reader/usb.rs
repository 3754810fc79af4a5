//! The WebUSB transport: a reader cabled to the tablet or counter PC. The same JSON frames as
//! over WebSocket, each behind a 4-byte big-endian length, on the bulk endpoints of the
//! reader's vendor-specific interface. web-sys's WebUSB needs `--cfg=web_sys_unstable_apis`.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use js_sys::{Array, Uint8Array};
use pos_protocol::reader::{
    encode_usb_frame, to_frame, DeframeError, Deframer, PosMessage, ReaderInfo, ReaderStatus,
    MAX_FRAME_BYTES, USB_LENGTH_BYTES,
};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Usb, UsbConnectionEvent, UsbDevice, UsbDeviceFilter, UsbDeviceRequestOptions, UsbDirection,
    UsbEndpointType, UsbInTransferResult, UsbTransferStatus,
};

use super::transport::{Inbound, Incoming, Transport};
use super::USB_INTERFACE_CLASS;
use super::{parse_usb_address, usb_address, Address, Discovered, Method, UsbFilter};
use crate::error::{PosError, ReaderError};
use crate::js;

/// Bytes asked for per `transferIn`: a whole largest frame fits, and no transfer can bring
/// more into wasm memory than that.
const TRANSFER_IN_BYTES: u32 = (MAX_FRAME_BYTES + USB_LENGTH_BYTES) as u32;

/// `navigator.usb`, or `usb_unavailable` (Firefox, Safari, insecure contexts).
fn usb() -> Result<Usb, PosError> {
    let navigator = js::get(&js::global(), "navigator");
    let usb = js::get(&navigator, "usb");
    if usb.is_undefined() || usb.is_null() {
        return Err(ReaderError::UsbUnavailable(
            "navigator.usb is missing (WebUSB exists in Chromium browsers, in secure contexts)"
                .into(),
        )
        .into());
    }
    Ok(usb.unchecked_into())
}

fn dom_name(e: &JsValue) -> String {
    js::js_error_name(e).unwrap_or_default()
}

/// A failed WebUSB call on an open or opening device, by the DOMException's name.
fn device_error(step: &str, e: &JsValue) -> PosError {
    match dom_name(e).as_str() {
        "SecurityError" => ReaderError::UsbInterfaceProtected(format!(
            "{step}: the browser blocks this interface class"
        ))
        .into(),
        "NotFoundError" => ReaderError::Unplugged.into(),
        name => ReaderError::ConnectionFailed(format!("{step} failed ({name})")).into(),
    }
}

fn matches(device: &UsbDevice, filters: &[UsbFilter]) -> bool {
    filters.iter().any(|f| {
        device.vendor_id() == f.vendor_id && f.product_id.is_none_or(|p| device.product_id() == p)
    })
}

fn describe(device: &UsbDevice) -> Discovered {
    let serial = device.serial_number().unwrap_or_default();
    Discovered {
        info: ReaderInfo {
            id: format!("usb_{serial}"),
            label: device
                .product_name()
                .unwrap_or_else(|| "USB reader".to_string()),
            serial_number: serial.clone(),
            device_type: "usb_reader".into(),
            country: None,
            firmware_version: format!(
                "{}.{}.{}",
                device.device_version_major(),
                device.device_version_minor(),
                device.device_version_subminor()
            ),
        },
        address: Address {
            method: Method::Usb,
            url: usb_address(device.vendor_id(), device.product_id(), &serial),
        },
        // Opened by this page (another terminal, another tab of it): someone holds it.
        status: if device.opened() {
            ReaderStatus::InUse
        } else {
            ReaderStatus::Online
        },
    }
}

async fn permitted(usb: &Usb) -> Result<Vec<UsbDevice>, PosError> {
    let devices = JsFuture::from(usb.get_devices()).await.map_err(|e| {
        ReaderError::UsbUnavailable(format!("getDevices failed ({})", dom_name(&e)))
    })?;
    Ok(Array::from(&devices)
        .iter()
        .map(|d| d.unchecked_into::<UsbDevice>())
        .collect())
}

/// USB readers: those this origin may already use, plus (with `request_permission`) the one
/// the user picks in the browser's chooser, which needs a user gesture.
pub async fn discover(
    request_permission: bool,
    filters: &[UsbFilter],
) -> Result<Vec<Discovered>, PosError> {
    let usb = usb()?;
    if request_permission {
        let list: Vec<UsbDeviceFilter> = filters
            .iter()
            .map(|f| {
                let filter = UsbDeviceFilter::new();
                filter.set_vendor_id(f.vendor_id);
                if let Some(p) = f.product_id {
                    filter.set_product_id(p);
                }
                filter
            })
            .collect();
        let options = UsbDeviceRequestOptions::new(&list);
        if let Err(e) = JsFuture::from(usb.request_device(&options)).await {
            return Err(match dom_name(&e).as_str() {
                "NotFoundError" => ReaderError::UsbPermissionDenied(
                    "no USB reader was chosen (or none is plugged in)".into(),
                ),
                "SecurityError" => ReaderError::UsbPermissionDenied(
                    "requestDevice needs a user gesture: call discoverReaders({ method: \"usb\" }) \
                     from a click handler, or pass requestPermission: false to list readers \
                     already permitted"
                        .into(),
                ),
                name => ReaderError::UsbUnavailable(format!("requestDevice failed ({name})")),
            }
            .into());
        }
    }
    Ok(permitted(&usb)
        .await?
        .iter()
        .filter(|d| matches(d, filters))
        .map(describe)
        .collect())
}

/// An open device with its claimed interface and read loop.
pub struct UsbTransport {
    device: UsbDevice,
    usb: Usb,
    endpoint_out: u8,
    interface: u8,
    running: Rc<Cell<bool>>,
    closed: Cell<bool>,
    on_disconnect: Closure<dyn FnMut(UsbConnectionEvent)>,
}

impl Drop for UsbTransport {
    fn drop(&mut self) {
        self.shutdown();
    }
}

impl UsbTransport {
    /// Opens the device at `url` (`usb:VID:PID:SERIAL`, already permitted), selects its
    /// configuration, claims the vendor-specific interface and starts reading.
    pub async fn open(url: &str, inbound: Inbound) -> Result<Box<dyn Transport>, PosError> {
        let (vendor, product, serial) = parse_usb_address(url).ok_or_else(|| {
            PosError::InvalidArgument(format!("not a USB reader address: {url:?}"))
        })?;
        let usb = usb()?;
        let device = permitted(&usb)
            .await?
            .into_iter()
            .find(|d| {
                d.vendor_id() == vendor
                    && d.product_id() == product
                    && d.serial_number().unwrap_or_default() == serial
            })
            .ok_or(ReaderError::Unplugged)?;
        // A session of this page that just ended closes its device asynchronously.
        for _ in 0..10 {
            if !device.opened() {
                break;
            }
            gloo_timers::future::TimeoutFuture::new(100).await;
        }
        if device.opened() {
            return Err(ReaderError::Busy.into());
        }
        JsFuture::from(device.open())
            .await
            .map_err(|e| device_error("open", &e))?;
        match Self::claim(&device).await {
            Ok((interface, endpoint_in, endpoint_out)) => {
                let running = Rc::new(Cell::new(true));
                let on_disconnect = Self::watch_unplug(&usb, &device, &inbound, &running);
                read_loop(device.clone(), endpoint_in, inbound, running.clone());
                Ok(Box::new(UsbTransport {
                    device,
                    usb,
                    endpoint_out,
                    interface,
                    running,
                    closed: Cell::new(false),
                    on_disconnect,
                }))
            }
            Err(e) => {
                let _ = JsFuture::from(device.close()).await;
                Err(e)
            }
        }
    }

    /// Configuration 1 unless one is selected; the first vendor-specific interface with a
    /// bulk IN and a bulk OUT endpoint. Returns (interface, in, out).
    async fn claim(device: &UsbDevice) -> Result<(u8, u8, u8), PosError> {
        if device.configuration().is_none() {
            JsFuture::from(device.select_configuration(1))
                .await
                .map_err(|e| device_error("selectConfiguration", &e))?;
        }
        let config = device.configuration().ok_or_else(|| {
            PosError::from(ReaderError::ConnectionFailed(
                "the device has no configuration".into(),
            ))
        })?;
        for interface in config.interfaces().iter() {
            let alternate = interface.alternate();
            if alternate.interface_class() != USB_INTERFACE_CLASS {
                continue;
            }
            let mut endpoint_in = None;
            let mut endpoint_out = None;
            for ep in alternate.endpoints().iter() {
                if ep.type_() != UsbEndpointType::Bulk {
                    continue;
                }
                match ep.direction() {
                    UsbDirection::In => endpoint_in = Some(ep.endpoint_number()),
                    UsbDirection::Out => endpoint_out = Some(ep.endpoint_number()),
                    _ => {}
                }
            }
            let (Some(ep_in), Some(ep_out)) = (endpoint_in, endpoint_out) else {
                continue;
            };
            let number = interface.interface_number();
            JsFuture::from(device.claim_interface(number))
                .await
                .map_err(|e| device_error("claimInterface", &e))?;
            return Ok((number, ep_in, ep_out));
        }
        Err(ReaderError::ConnectionFailed(
            "the device has no vendor-specific interface with bulk endpoints".into(),
        )
        .into())
    }

    /// `navigator.usb`'s `disconnect` event for this device ends the session as unplugged.
    fn watch_unplug(
        usb: &Usb,
        device: &UsbDevice,
        inbound: &Inbound,
        running: &Rc<Cell<bool>>,
    ) -> Closure<dyn FnMut(UsbConnectionEvent)> {
        let device = device.clone();
        let inbound = inbound.clone();
        let running = running.clone();
        let closure =
            Closure::<dyn FnMut(UsbConnectionEvent)>::new(move |e: UsbConnectionEvent| {
                let gone: JsValue = e.device().into();
                let ours: &JsValue = device.as_ref();
                if running.get() && js_sys::Object::is(&gone, ours) {
                    running.set(false);
                    inbound(Incoming::Closed(ReaderError::Unplugged.into()));
                }
            });
        let _ =
            usb.add_event_listener_with_callback("disconnect", closure.as_ref().unchecked_ref());
        closure
    }

    fn shutdown(&self) {
        let _ = self.usb.remove_event_listener_with_callback(
            "disconnect",
            self.on_disconnect.as_ref().unchecked_ref(),
        );
        self.running.set(false);
        if !self.closed.replace(true) {
            // Also after a fatal framing error: the device must close to be opened again.
            let device = self.device.clone();
            let interface = self.interface;
            wasm_bindgen_futures::spawn_local(async move {
                let _ = JsFuture::from(device.release_interface(interface)).await;
                let _ = JsFuture::from(device.close()).await;
            });
        }
    }
}

/// Reads transfers until the device goes away or the transport closes, deframing as it goes.
fn read_loop(device: UsbDevice, endpoint: u8, inbound: Inbound, running: Rc<Cell<bool>>) {
    wasm_bindgen_futures::spawn_local(async move {
        let deframer = RefCell::new(Deframer::new());
        while running.get() {
            let result = JsFuture::from(device.transfer_in(endpoint, TRANSFER_IN_BYTES)).await;
            if !running.get() {
                return;
            }
            let result: UsbInTransferResult = match result {
                Ok(r) => r,
                Err(e) => {
                    running.set(false);
                    let why = match dom_name(&e).as_str() {
                        "NotFoundError" => ReaderError::Unplugged,
                        _ => ReaderError::Disconnected,
                    };
                    inbound(Incoming::Closed(why.into()));
                    return;
                }
            };
            if result.status() != UsbTransferStatus::Ok {
                // A stall or babble: the stream is no longer trustworthy.
                running.set(false);
                inbound(Incoming::Closed(
                    ReaderError::Protocol("USB transfer stalled".into()).into(),
                ));
                return;
            }
            let Some(view) = result.data() else { continue };
            let len = view.byte_length();
            if len > TRANSFER_IN_BYTES as usize {
                // More than was asked for: refuse before copying it into wasm memory.
                running.set(false);
                inbound(Incoming::Closed(
                    ReaderError::Protocol(format!("a USB transfer of {len} bytes")).into(),
                ));
                return;
            }
            let bytes = Uint8Array::new_with_byte_offset_and_length(
                &view.buffer(),
                view.byte_offset() as u32,
                len as u32,
            )
            .to_vec();
            let frames = deframer.borrow_mut().push(&bytes);
            for frame in frames {
                match frame {
                    Ok(text) => inbound(Incoming::Frame(text)),
                    Err(DeframeError::NotUtf8) => {
                        inbound(Incoming::Refused("a USB frame that is not UTF-8".into()))
                    }
                    Err(fatal) => {
                        running.set(false);
                        inbound(Incoming::Closed(
                            ReaderError::Protocol(fatal.to_string()).into(),
                        ));
                        return;
                    }
                }
                if !running.get() {
                    return;
                }
            }
        }
    });
}

impl Transport for UsbTransport {
    fn send(&self, msg: &PosMessage) -> Result<(), PosError> {
        if !self.running.get() {
            return Err(ReaderError::Disconnected.into());
        }
        let promise = self
            .device
            .transfer_out_with_u8_slice(self.endpoint_out, &encode_usb_frame(&to_frame(msg)))
            .map_err(|e| device_error("transferOut", &e))?;
        // Failures surface on the read side (`disconnect`, a failed transferIn).
        wasm_bindgen_futures::spawn_local(async move {
            let _ = JsFuture::from(promise).await;
        });
        Ok(())
    }

    fn close(&self) {
        self.shutdown();
    }
}
