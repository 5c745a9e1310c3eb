//! Shared by the integration tests.

use std::future::Future;

/// Runs `test` on this thread while two more threads run `executor`, the way a multi-threaded
/// smol program does; the threads stop when `test` is done.
pub(crate) fn with_two_executor_threads<T>(
    executor: &'static smol::Executor<'static>,
    test: impl Future<Output = T>,
) -> T {
    let (stop, stopped) = smol::channel::bounded::<()>(1);
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let stopped = stopped.clone();
            std::thread::spawn(move || smol::block_on(executor.run(stopped.recv())))
        })
        .collect();
    let output = smol::block_on(test);
    drop(stop);
    for thread in threads {
        // Each thread's run ends with the channel closed: an error, as expected.
        assert!(thread.join().unwrap().is_err());
    }
    output
}
