//! The hub over real sockets, on tokio and on smol: the same bodies on both.
#![allow(unreachable_pub)] // test modules share items with `pub`

mod admit;
mod python;
mod rt;
mod slow;
mod suite;
mod support;
mod waffle;

macro_rules! all_tests {
    ($rt:ty) => {
        crate::hub_tests!($rt:
            channels_and_broadcast_except,
            presence_once_per_user_even_on_abrupt_close,
            whisper_rules,
            auth_rejections_with_statuses,
            connection_caps_per_ip_user_and_total,
            message_limits,
            slow_consumer_disconnect,
            slow_consumer_drop_newest_and_oldest,
            graceful_shutdown_loses_nothing,
            tank_protocol_end_to_end,
            native_errors_are_frames_not_closes,
            events_and_stats,
            dead_peer_is_a_disconnect,
            broker_carries_publications_and_presence,
            write_timeout_closes_a_stuck_consumer,
        );
        crate::hub_tests!($rt: @waffle json_router_and_events, json_socket_ping_and_write_timeout);
    };
}

mod tokio_runtime {
    all_tests!(crate::rt::Tokio);
}

mod smol_runtime {
    all_tests!(crate::rt::Smol);
}
