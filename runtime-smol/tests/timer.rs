//! `SmolTimer`: the shared timer queue fires every deadline, after it, from any thread's tasks,
//! and follows resets.

mod common;

use std::future::poll_fn;
use std::task::Poll;
use std::time::{Duration, Instant};

use wsengine_driver::Timer;
use wsengine_smol::SmolTimer;

/// Waits for `timer`, failing after 30 s (far beyond any deadline used here).
async fn expire(mut timer: SmolTimer) {
    let guard = async {
        smol::Timer::after(Duration::from_secs(30)).await;
        panic!("timer did not fire within 30 s");
    };
    smol::future::or(poll_fn(|cx| timer.poll_expired(cx)), guard).await;
}

#[test]
fn fires_after_its_deadline() {
    smol::block_on(async {
        let deadline = SmolTimer::now() + Duration::from_millis(20);
        expire(SmolTimer::at(deadline)).await;
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn follows_a_reset_to_an_earlier_deadline() {
    smol::block_on(async {
        let mut timer = SmolTimer::at(SmolTimer::now() + Duration::from_secs(3600));
        // Registered at the far deadline first.
        assert!(poll_fn(|cx| Poll::Ready(timer.poll_expired(cx))).await.is_pending());
        let deadline = SmolTimer::now() + Duration::from_millis(10);
        timer.reset(deadline);
        expire(timer).await;
        assert!(Instant::now() >= deadline);
    });
}

#[test]
fn fires_many_timers_from_tasks_on_two_threads() {
    static EXECUTOR: smol::Executor<'static> = smol::Executor::new();
    common::with_two_executor_threads(&EXECUTOR, async {
        let start = SmolTimer::now();
        let tasks: Vec<_> = (0..200u64)
            .map(|i| {
                // Equal deadlines too: every third shares one.
                let deadline = start + Duration::from_millis(i % 67);
                EXECUTOR.spawn(async move {
                    let mut timer = SmolTimer::at(start + Duration::from_secs(3600));
                    // A registered timer dropped before its deadline must not disturb the others.
                    let mut dropped = SmolTimer::at(deadline);
                    let _ = poll_fn(|cx| Poll::Ready(dropped.poll_expired(cx))).await;
                    drop(dropped);
                    timer.reset(deadline);
                    expire(timer).await;
                    assert!(Instant::now() >= deadline);
                })
            })
            .collect();
        for task in tasks {
            task.await;
        }
    });
}
