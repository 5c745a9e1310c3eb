//! JSON helpers in waffle's manner: broadcast JSON and events from the hub, and a
//! [`JsonSocket`] for a single connection with `send_json`/`recv_json`, a ping that resolves
//! when its pong arrives, and a write timeout.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wsengine::{CloseCode, Message};
use wsengine_driver::futures_io::{AsyncRead, AsyncWrite};
use wsengine_driver::{Error, Incoming, Timer, WebSocket};

use crate::channel::ChannelKey;
use crate::conn::ConnectionId;
use crate::fanout::Delivery;
use crate::hub::{Except, Hub};
use crate::router::{Envelope, event_message};

impl Hub {
    /// Sends a value as JSON to every connection (waffle's `BroadcastJSON`).
    pub fn broadcast_json<T: Serialize + ?Sized>(
        &self,
        value: &T,
        except: &Except,
    ) -> Result<Delivery, serde_json::Error> {
        Ok(self.broadcast(Message::from(serde_json::to_string(value)?), except))
    }

    /// Sends an event `{"name","data"}` to every connection (waffle's `BroadcastEvent`).
    pub fn broadcast_event<T: Serialize + ?Sized>(
        &self,
        name: &str,
        data: &T,
        except: &Except,
    ) -> Result<Delivery, serde_json::Error> {
        Ok(self.broadcast(event_message(name, data)?, except))
    }

    /// Sends a value as JSON to a channel's subscribers (waffle's `room.BroadcastJSON`).
    pub fn channel_json<T: Serialize + ?Sized>(
        &self,
        channel: &ChannelKey,
        value: &T,
        except: &Except,
    ) -> Result<Delivery, serde_json::Error> {
        Ok(self.send_to_channel(channel, Message::from(serde_json::to_string(value)?), except))
    }

    /// Sends an event `{"name","data"}` to a channel's subscribers (waffle's
    /// `room.BroadcastEvent`).
    pub fn channel_event<T: Serialize + ?Sized>(
        &self,
        channel: &ChannelKey,
        name: &str,
        data: &T,
        except: &Except,
    ) -> Result<Delivery, serde_json::Error> {
        Ok(self.send_to_channel(channel, event_message(name, data)?, except))
    }

    /// Sends a value as JSON to one connection.
    pub fn send_json<T: Serialize + ?Sized>(
        &self,
        connection: ConnectionId,
        value: &T,
    ) -> Result<bool, serde_json::Error> {
        Ok(self.send(connection, Message::from(serde_json::to_string(value)?)))
    }

    /// Sends an event `{"name","data"}` to one connection (waffle's `SendEvent`).
    pub fn send_event<T: Serialize + ?Sized>(
        &self,
        connection: ConnectionId,
        name: &str,
        data: &T,
    ) -> Result<bool, serde_json::Error> {
        Ok(self.send(connection, event_message(name, data)?))
    }
}

/// What can go wrong on a [`JsonSocket`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JsonError {
    /// The WebSocket failed or closed.
    #[error(transparent)]
    WebSocket(#[from] Error),
    /// The message was not the JSON expected.
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// A send did not complete in time; the connection was closed with 1008.
    #[error("write timed out")]
    WriteTimeout,
    /// No pong arrived in time.
    #[error("no pong in time")]
    PongTimeout,
}

/// One connection with JSON helpers (waffle's `Conn`).
#[derive(Debug)]
pub struct JsonSocket<S, T> {
    ws: WebSocket<S, T>,
    /// Messages that arrived while a ping waited for its pong.
    pending: VecDeque<Message>,
    write_timeout: Option<Duration>,
    pings: u64,
}

impl<S, T> JsonSocket<S, T>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    /// Wraps a WebSocket; sends wait at most 10 seconds.
    pub fn new(ws: WebSocket<S, T>) -> Self {
        Self {
            ws,
            pending: VecDeque::new(),
            write_timeout: Some(Duration::from_secs(10)),
            pings: 0,
        }
    }

    /// How long a send may take before the connection is closed (`None`: forever).
    pub fn with_write_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.write_timeout = timeout;
        self
    }

    /// The WebSocket.
    pub fn get_mut(&mut self) -> &mut WebSocket<S, T> {
        &mut self.ws
    }

    /// Unwraps the WebSocket (messages a ping set aside are lost).
    pub fn into_inner(self) -> WebSocket<S, T> {
        self.ws
    }

    /// Sends a message within the write timeout; on timeout closes with 1008.
    pub async fn send(&mut self, message: impl Into<Message>) -> Result<(), JsonError> {
        let message = message.into();
        let Some(timeout) = self.write_timeout else {
            return Ok(self.ws.send(message).await?);
        };
        let sent = within::<T, _>(timeout, self.ws.send(message)).await;
        match sent {
            Some(result) => Ok(result?),
            None => {
                let _ = self.ws.close(CloseCode::POLICY_VIOLATION, "write timeout").await;
                Err(JsonError::WriteTimeout)
            }
        }
    }

    /// Sends a value as JSON.
    pub async fn send_json<V: Serialize + ?Sized>(&mut self, value: &V) -> Result<(), JsonError> {
        self.send(serde_json::to_string(value)?).await
    }

    /// Sends an event `{"name","data"}`.
    pub async fn send_event<V: Serialize + ?Sized>(&mut self, name: &str, data: &V) -> Result<(), JsonError> {
        self.send(event_message(name, data)?).await
    }

    /// Sends a typed message `{"type","payload","id"?}`.
    pub async fn send_envelope(&mut self, envelope: &Envelope) -> Result<(), JsonError> {
        self.send(envelope.to_message()?).await
    }

    /// The next message.
    pub async fn recv(&mut self) -> Result<Message, JsonError> {
        if let Some(message) = self.pending.pop_front() {
            return Ok(message);
        }
        Ok(self.ws.recv().await?)
    }

    /// The next message, parsed as `V`.
    pub async fn recv_json<V: DeserializeOwned>(&mut self) -> Result<V, JsonError> {
        let message = self.recv().await?;
        Ok(serde_json::from_slice(message.payload())?)
    }

    /// The next typed message.
    pub async fn recv_envelope(&mut self) -> Result<Envelope, JsonError> {
        self.recv_json().await
    }

    /// Sends a ping and waits (at most `timeout`) for its pong; returns the round trip.
    /// Messages arriving meanwhile are kept for the next `recv`.
    pub async fn ping(&mut self, timeout: Duration) -> Result<Duration, JsonError> {
        self.pings += 1;
        let payload = bytes::Bytes::from(self.pings.to_be_bytes().to_vec());
        let start = T::now();
        self.ws.ping(payload.clone()).await?;
        let pending = &mut self.pending;
        let ws = &mut self.ws;
        let wait = async {
            loop {
                match ws.recv_incoming().await? {
                    Incoming::Pong(p) if p == payload => return Ok::<_, Error>(()),
                    Incoming::Message(message) => pending.push_back(message),
                    _ => {}
                }
            }
        };
        match within::<T, _>(timeout, wait).await {
            Some(result) => {
                result?;
                Ok(T::now().saturating_duration_since(start))
            }
            None => Err(JsonError::PongTimeout),
        }
    }
}

/// `future`'s output, or `None` after `timeout` on `T`'s clock.
async fn within<T: Timer, F: Future>(timeout: Duration, future: F) -> Option<F::Output> {
    let mut timer = T::at(T::now() + timeout);
    let mut future = pin!(future);
    poll_fn(|cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Some(output));
        }
        if timer.poll_expired(cx).is_ready() {
            return Poll::Ready(None);
        }
        Poll::Pending
    })
    .await
}
