//! Helpers the runtime crates' examples share: the echo check and the Autobahn client loop.

use std::future::Future;

use futures_io::{AsyncRead, AsyncWrite};
use wsengine::{CloseCode, Message, Response};

use super::echo;
use crate::{Error, Timer, WebSocket};

/// Sends text and binary messages from 1 byte to 1 MiB and checks each echo; with
/// `require_deflate`, also that permessage-deflate was agreed.
pub async fn check_echo<S, T>(
    ws: &mut WebSocket<S, T>,
    response: &Response,
    require_deflate: bool,
) -> Result<usize, String>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
{
    if require_deflate && response.negotiated().deflate().is_none() {
        return Err("permessage-deflate was not negotiated".into());
    }
    let mut checked = 0;
    for size in [1usize, 125, 126, 1000, 65_535, 65_536, 300_000, 1 << 20] {
        let text: String = (0..size).map(|i| char::from(b'a' + (i % 26) as u8)).collect();
        let binary: Vec<u8> = (0..size).map(|i| (i * 7 % 256) as u8).collect();
        for message in [Message::from(text), Message::from(binary)] {
            ws.send(message.clone()).await.map_err(|e| e.to_string())?;
            let echo = ws.recv().await.map_err(|e| e.to_string())?;
            if echo != message {
                return Err(format!("echo of a {size}-byte {:?} message differs", message.kind()));
            }
            checked += 1;
        }
    }
    ws.close(CloseCode::NORMAL, "").await.map_err(|e| e.to_string())?;
    Ok(checked)
}

/// Runs the Autobahn|Testsuite fuzzingserver protocol as a client: reads the case count, echoes
/// every case, then asks for the reports. `connect` opens one URL.
pub async fn autobahn_client<S, T, F, Fut>(base: &str, agent: &str, connect: F) -> Result<u32, Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: Timer,
    F: Fn(String) -> Fut,
    Fut: Future<Output = Result<(WebSocket<S, T>, Response), Error>>,
{
    let base = base.trim_end_matches('/');
    let (mut ws, _) = connect(format!("{base}/getCaseCount")).await?;
    let count: u32 = match ws.recv().await? {
        Message::Text(text) => text
            .as_str()
            .trim()
            .parse()
            .map_err(|_| Error::Connect(format!("bad case count {text:?}")))?,
        Message::Binary(_) => return Err(Error::Connect("binary case count".into())),
    };
    let _ = ws.close(CloseCode::NORMAL, "").await;
    for case in 1..=count {
        let (ws, _) = connect(format!("{base}/runCase?case={case}&agent={agent}")).await?;
        echo(ws).await;
    }
    let (mut ws, _) = connect(format!("{base}/updateReports?agent={agent}")).await?;
    let _ = ws.close(CloseCode::NORMAL, "").await;
    Ok(count)
}
