//! The seam between the reader protocol and the ways to reach a reader: a transport carries
//! messages to the reader (a real one as one text frame each), whole text frames back, and
//! reports its end.

use std::rc::Rc;

use pos_protocol::reader::PosMessage;

use crate::error::PosError;

/// What a transport hands up to the connection above it.
pub enum Incoming {
    /// One whole frame (a WebSocket text message, a deframed USB message, a simulated reply).
    Frame(String),
    /// A frame the transport refused without reading it into memory (oversized, binary,
    /// not UTF-8); `why` names the fault, never the content. The transport stays usable.
    Refused(String),
    /// The transport ended; `why` is what the session reports (disconnected, unplugged, …).
    Closed(PosError),
}

/// Where a transport delivers what it receives. Cheap to clone; holds the connection weakly,
/// so a transport's callbacks never keep a dropped connection alive.
pub type Inbound = Rc<dyn Fn(Incoming)>;

/// A way to carry frames to a reader.
pub trait Transport {
    /// Sends one message: a WebSocket or USB transport writes it as one frame
    /// (`to_frame`); the in-page simulated reader takes the message itself, so the package
    /// carries no parser for the POS's side of the protocol. An error means the transport is
    /// gone.
    fn send(&self, msg: &PosMessage) -> Result<(), PosError>;
    /// Closes the transport; after this it delivers nothing more.
    fn close(&self);
}
