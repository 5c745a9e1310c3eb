//! The connection's states and every transition between them, in one table.

use super::Role;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Server: reading the upgrade request.
    ServerHandshake,
    /// Server: the request is with the application for a decision.
    ServerDecision,
    /// Client: request sent, reading the response.
    ClientHandshake,
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (§7.1.2).
    CloseSent,
    /// Client: the close handshake is done; wait for the server to end the transport (§7.1.1).
    AwaitingEof,
    /// Nothing more will be sent or received; the transport should close once output drains.
    Closed,
}

/// What happens to a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Input {
    /// Server: a complete, valid request arrived.
    RequestParsed,
    /// Server: the application accepted. Client: a valid response arrived.
    HandshakeDone,
    /// The handshake failed or was rejected.
    HandshakeFailed,
    /// We queued a close frame.
    CloseSent,
    /// A valid close frame arrived.
    CloseReceived,
    /// The peer broke the protocol, or a timer gave up on it: fail the connection (§7.1.7).
    Fail,
    /// The transport ended.
    Eof,
    /// The close timer expired.
    CloseTimeout,
}

impl State {
    /// The state after `input`. Inputs that cannot happen in a state leave it unchanged; the
    /// connection only feeds inputs its state allows, and this keeps the table total.
    pub(crate) fn next(self, input: Input, role: Role) -> Self {
        use {Input as I, State as S};
        // After a complete close handshake the server ends the transport first (§7.1.1).
        let after_close_handshake = match role {
            Role::Server => S::Closed,
            Role::Client => S::AwaitingEof,
        };
        match (self, input) {
            (S::ServerHandshake, I::RequestParsed) => S::ServerDecision,
            (S::ServerDecision | S::ClientHandshake, I::HandshakeDone) => S::Open,
            (S::ServerHandshake | S::ServerDecision | S::ClientHandshake, I::HandshakeFailed | I::Eof) => S::Closed,
            (S::ServerHandshake | S::ServerDecision | S::ClientHandshake, I::Fail) => S::Closed,
            (S::Open, I::CloseSent) => S::CloseSent,
            (S::Open | S::CloseSent, I::CloseReceived) => after_close_handshake,
            (S::Open | S::CloseSent | S::AwaitingEof, I::Fail | I::Eof | I::CloseTimeout) => S::Closed,
            (state, _) => state,
        }
    }

    pub(crate) fn is_handshaking(self) -> bool {
        matches!(
            self,
            Self::ServerHandshake | Self::ServerDecision | Self::ClientHandshake
        )
    }

    /// Whether frames from the peer are still read.
    pub(crate) fn is_receiving(self) -> bool {
        matches!(self, Self::Open | Self::CloseSent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_handshake_ends_in_the_right_place_for_each_role() {
        for (role, end) in [(Role::Server, State::Closed), (Role::Client, State::AwaitingEof)] {
            assert_eq!(State::Open.next(Input::CloseReceived, role), end);
            let sent = State::Open.next(Input::CloseSent, role);
            assert_eq!(sent, State::CloseSent);
            assert_eq!(sent.next(Input::CloseReceived, role), end);
            assert_eq!(end.next(Input::Eof, role), State::Closed);
        }
    }

    #[test]
    fn closed_is_terminal() {
        let inputs = [
            Input::RequestParsed,
            Input::HandshakeDone,
            Input::HandshakeFailed,
            Input::CloseSent,
            Input::CloseReceived,
            Input::Fail,
            Input::Eof,
            Input::CloseTimeout,
        ];
        for input in inputs {
            for role in [Role::Server, Role::Client] {
                assert_eq!(State::Closed.next(input, role), State::Closed);
            }
        }
    }
}
