use crate::event::{Envelope, EventSink};
use tokio::sync::mpsc;

/// An [`EventSink`] that passes every event to a channel, for a caller that follows a run
/// from another task (a server streaming it to a browser) rather than from a terminal.
/// Unbounded, since the executor must never wait on a slow reader; events after the reader
/// is dropped are discarded.
pub struct EventChannel {
    sender: mpsc::UnboundedSender<Envelope>,
}

impl EventChannel {
    pub fn new() -> (EventChannel, mpsc::UnboundedReceiver<Envelope>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (EventChannel { sender }, receiver)
    }
}

impl EventSink for EventChannel {
    fn emit(&self, envelope: &Envelope) {
        let _ = self.sender.send(envelope.clone());
    }
}
