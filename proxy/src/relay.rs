//! The frame-aware relay between a client's WebSocket and a backend's, in one task.
//!
//! Both legs run the engine with fragment delivery on, so each data frame is forwarded as it
//! completes (a message of any size passes holding at most one frame). One task polls both
//! legs: a leg is read only while the other leg's outbound queue is under its limit, so a slow
//! reader on one side pauses reading on the other and memory stays bounded, without a lock or
//! a channel between halves. Pings, pongs and close replies are each leg's own business (the
//! engine answers them and sends heartbeats); data frames and close codes cross over.

use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_sink_shim::{poll_flush, poll_ready, start_send};
use tokio::sync::watch;
use wsengine_tokio::MessageKind;
use wsengine_tokio::wsengine::{Fragment, Utf8Bytes};
use wsengine_tokio::{CloseCause, CloseCode, CloseInfo, Error, Incoming, Message};

use crate::metrics::Counters;

/// Close code for "the backend failed" (RFC 6455 registry: 1014 Bad Gateway).
pub const BAD_GATEWAY: CloseCode = CloseCode::BAD_GATEWAY;

/// How many items one direction relays in a row.
const BUDGET: usize = 64;
/// How many rounds over both directions one wake-up runs before yielding to other tasks.
const ROUNDS: usize = 8;

/// A WebSocket leg, whatever its transport.
pub(crate) type Leg<S> = wsengine_tokio::WebSocket<S>;

/// Which side ended the relay, and how.
#[derive(Debug)]
pub enum Ended {
    /// The client's leg ended first.
    Client(Outcome),
    /// The backend's leg ended first.
    Backend(Outcome),
    /// The backend left the configuration and was drained.
    Drained,
}

/// How a leg ended.
#[derive(Debug)]
pub enum Outcome {
    /// A close handshake or a detected failure, with code and cause.
    Closed(CloseInfo),
    /// The transport failed.
    Error(String),
}

/// The counters a relay adds to.
#[derive(Debug, Clone)]
pub(crate) struct Meters {
    pub(crate) route: Arc<Counters>,
    pub(crate) backend: Arc<crate::balance::Backend>,
}

impl Meters {
    fn relayed(&self, to_backend: bool, bytes: usize, message_done: bool) {
        let bytes = bytes as u64;
        for c in [&*self.route, &self.backend.counters] {
            if to_backend {
                Counters::add(&c.bytes_to_backend, bytes);
                Counters::add(&c.messages_to_backend, u64::from(message_done));
            } else {
                Counters::add(&c.bytes_to_client, bytes);
                Counters::add(&c.messages_to_client, u64::from(message_done));
            }
        }
    }
}

/// Relays until one leg ends, then closes the other with the mapped code and waits for its
/// close handshake (bounded by its `close_timeout`).
pub(crate) async fn relay<C, B>(
    mut client: Leg<C>,
    mut backend: Leg<B>,
    meters: Meters,
    mut drain: watch::Receiver<bool>,
) -> Ended
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let ended = {
        let mut drained = pin!(async move {
            // A closed channel (backend gone from the registry) never drains.
            while !*drain.borrow_and_update() {
                if drain.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        });
        std::future::poll_fn(|cx| {
            if drained.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Ended::Drained);
            }
            poll_pair(&mut client, &mut backend, &meters, cx)
        })
        .await
    };
    match &ended {
        Ended::Client(outcome) => {
            let (code, reason) = to_backend(outcome);
            finish(&mut backend, code, &reason).await;
        }
        Ended::Backend(outcome) => {
            let (code, reason) = to_client(outcome);
            finish(&mut client, code, &reason).await;
        }
        Ended::Drained => {
            let reason = "backend removed from the configuration";
            let (a, b) = (&mut client, &mut backend);
            tokio::join!(
                finish(a, CloseCode::GOING_AWAY, reason),
                finish(b, CloseCode::GOING_AWAY, reason)
            );
        }
    }
    let abnormal = match &ended {
        Ended::Client(Outcome::Closed(info)) | Ended::Backend(Outcome::Closed(info)) => {
            !matches!(info.cause, CloseCause::RemoteClose)
        }
        Ended::Client(Outcome::Error(_)) | Ended::Backend(Outcome::Error(_)) => true,
        Ended::Drained => false,
    };
    if abnormal {
        Counters::add(&meters.route.errors, 1);
        Counters::add(&meters.backend.counters.errors, 1);
    }
    ended
}

/// The close the backend gets when the client's leg ended: the client's own close passes
/// through exactly; a client that vanished, stopped answering pings or broke the protocol
/// shows as 1001 (going away).
pub fn to_backend(outcome: &Outcome) -> (CloseCode, String) {
    match outcome {
        Outcome::Closed(info) if info.cause == CloseCause::RemoteClose => pass_through(info),
        _ => (CloseCode::GOING_AWAY, "client went away".into()),
    }
}

/// The close the client gets when the backend's leg ended: the backend's close passes through
/// exactly; a backend that died or stopped answering shows as 1014 (bad gateway).
pub fn to_client(outcome: &Outcome) -> (CloseCode, String) {
    match outcome {
        Outcome::Closed(info) if info.cause == CloseCause::RemoteClose => pass_through(info),
        _ => (BAD_GATEWAY, "backend went away".into()),
    }
}

fn pass_through(info: &CloseInfo) -> (CloseCode, String) {
    if info.code == CloseCode::NO_STATUS {
        // A close frame without a code: the engine has no way to send one, and 1000 means the
        // same to every peer.
        return (CloseCode::NORMAL, String::new());
    }
    (info.code, info.reason.clone())
}

/// Closes `leg` with `code` and waits for the close handshake. A code the engine refuses to
/// send (none that a peer can send us; a safety net) falls back to 1011, internal error.
async fn finish<S>(leg: &mut Leg<S>, code: CloseCode, reason: &str)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let result = match leg.close(code, reason).await {
        Err(Error::Misuse(_)) => {
            let fallback = format!("{reason} ({})", code.0);
            leg.close(CloseCode::INTERNAL_ERROR, &fallback).await
        }
        other => other,
    };
    if let Err(error) = result {
        tracing::debug!(%error, "closing the other leg");
    }
}

/// One wake-up of the relay: moves what each leg has to the other while the other has room.
fn poll_pair<C, B>(client: &mut Leg<C>, backend: &mut Leg<B>, meters: &Meters, cx: &mut Context<'_>) -> Poll<Ended>
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    for _ in 0..ROUNDS {
        // Each direction is drained before the other is read: everything one read brought is
        // queued on the other leg before anything is written, so a burst leaves in one write
        // per leg instead of one per frame.
        let mut moved = false;
        for _ in 0..BUDGET {
            match pump(client, backend, cx) {
                Step::Moved(bytes, done) => {
                    meters.relayed(true, bytes, done);
                    moved = true;
                }
                Step::Idle => break,
                Step::SourceEnded(outcome) => return Poll::Ready(Ended::Client(outcome)),
                Step::SinkEnded(outcome) => return Poll::Ready(Ended::Backend(outcome)),
            }
        }
        for _ in 0..BUDGET {
            match pump(backend, client, cx) {
                Step::Moved(bytes, done) => {
                    meters.relayed(false, bytes, done);
                    moved = true;
                }
                Step::Idle => break,
                Step::SourceEnded(outcome) => return Poll::Ready(Ended::Backend(outcome)),
                Step::SinkEnded(outcome) => return Poll::Ready(Ended::Client(outcome)),
            }
        }
        if !moved {
            flush_both(client, backend, cx);
            return Poll::Pending;
        }
    }
    // Still busy: write what this turn gathered, let other connections run, come back at once.
    flush_both(client, backend, cx);
    cx.waker().wake_by_ref();
    Poll::Pending
}

/// Writes what each leg has queued, all of a wake-up's frames in one write per leg (like the
/// engine's own "one write per wake-up"); a failure shows up as the leg's end on its next read.
fn flush_both<C, B>(client: &mut Leg<C>, backend: &mut Leg<B>, cx: &mut Context<'_>)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let _ = poll_flush(client, cx);
    let _ = poll_flush(backend, cx);
}

enum Step {
    /// A frame of this many bytes crossed; `true` when it ended a message.
    Moved(usize, bool),
    /// Nothing to move now (the waker is registered).
    Idle,
    SourceEnded(Outcome),
    SinkEnded(Outcome),
}

/// Moves at most one item from `src` to `dst`.
fn pump<A, B>(src: &mut Leg<A>, dst: &mut Leg<B>, cx: &mut Context<'_>) -> Step
where
    A: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    B: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    match poll_ready(dst, cx) {
        Poll::Ready(Ok(())) => {}
        // Backpressure: `dst` is full, so `src` is not read (its peer's TCP window fills).
        Poll::Pending => return Step::Idle,
        Poll::Ready(Err(_)) => return Step::SinkEnded(end_of(dst, cx)),
    }
    let incoming = {
        // recv is cancel-safe: a future created, polled once and dropped loses nothing.
        let mut recv = pin!(src.recv_incoming());
        match recv.as_mut().poll(cx) {
            Poll::Pending => return Step::Idle,
            Poll::Ready(Ok(incoming)) => incoming,
            Poll::Ready(Err(error)) => return Step::SourceEnded(outcome_of(error)),
        }
    };
    let sent = match incoming {
        Incoming::Fragment(Fragment {
            kind,
            data,
            is_first,
            is_final,
        }) => {
            let len = data.len();
            // A whole message in one frame (the usual case) is only queued, so everything one
            // wake-up relays leaves in one write; `flush_both` writes it.
            match (is_first && is_final).then(|| whole(kind, &data)).flatten() {
                Some(message) => start_send(dst, message).map(|()| (len, true)),
                None => {
                    let mut send = pin!(dst.send_fragment(kind, data, is_final));
                    // Room was checked above, so the fragment is queued on the first poll; a
                    // pending write continues on later flushes.
                    match send.as_mut().poll(cx) {
                        Poll::Ready(Err(error)) => Err(error),
                        _ => Ok((len, is_final)),
                    }
                }
            }
        }
        Incoming::Message(message) => {
            let len = message.len();
            start_send(dst, message).map(|()| (len, true))
        }
        // Each leg answers and originates its own pings.
        Incoming::Ping(_) | Incoming::Pong(_) => return Step::Moved(0, false),
        _ => return Step::Moved(0, false),
    };
    match sent {
        Ok((len, done)) => Step::Moved(len, done),
        Err(_) => Step::SinkEnded(end_of(dst, cx)),
    }
}

/// `data` as a [`Message`] (text is checked again here, cheaply; a failure leaves it to the
/// fragment path, which reports it).
fn whole(kind: MessageKind, data: &bytes::Bytes) -> Option<Message> {
    match kind {
        MessageKind::Binary => Some(Message::Binary(data.clone())),
        MessageKind::Text => Utf8Bytes::try_from(data.clone()).ok().map(Message::Text),
    }
}

/// The outcome of a leg whose sending failed: its read side reports how it ended.
fn end_of<S>(leg: &mut Leg<S>, cx: &mut Context<'_>) -> Outcome
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Some(info) = leg.close_info() {
        return Outcome::Closed(info.clone());
    }
    let mut recv = pin!(leg.recv_incoming());
    match recv.as_mut().poll(cx) {
        Poll::Ready(Err(error)) => outcome_of(error),
        _ => Outcome::Error("send failed".into()),
    }
}

fn outcome_of(error: Error) -> Outcome {
    match error {
        Error::Closed(info) => Outcome::Closed(info),
        other => Outcome::Error(other.to_string()),
    }
}

/// The `Sink` methods of a WebSocket, called without naming the `futures` traits' crate.
mod futures_sink_shim {
    use super::*;

    pub(super) fn poll_ready<S>(leg: &mut Leg<S>, cx: &mut Context<'_>) -> Poll<Result<(), Error>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        <Leg<S> as futures_sink::Sink<Message>>::poll_ready(Pin::new(leg), cx)
    }

    pub(super) fn start_send<S>(leg: &mut Leg<S>, message: Message) -> Result<(), Error>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        <Leg<S> as futures_sink::Sink<Message>>::start_send(Pin::new(leg), message)
    }

    pub(super) fn poll_flush<S>(leg: &mut Leg<S>, cx: &mut Context<'_>) -> Poll<Result<(), Error>>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        <Leg<S> as futures_sink::Sink<Message>>::poll_flush(Pin::new(leg), cx)
    }
}
