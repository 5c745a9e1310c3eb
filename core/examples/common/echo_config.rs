//! The settings of the core's echo servers (`blocking_echo`, `uring_echo`; each includes this
//! file as a module with `#[path]`).

use wsengine::Config;

/// Defaults, plus permessage-deflate accepted (browsers and Autobahn 12.*/13.* offer it),
/// honouring each offer's context takeover when `context_takeover` is set.
pub(crate) fn echo_config(context_takeover: bool) -> Config {
    #[cfg(feature = "deflate")]
    let config = {
        let mut config = Config::default();
        let deflate = wsengine::DeflateConfig::default();
        config.deflate = Some(if context_takeover {
            deflate.with_context_takeover()
        } else {
            deflate
        });
        config
    };
    #[cfg(not(feature = "deflate"))]
    let config = {
        let _ = context_takeover;
        Config::default()
    };
    config
}
