//! The server stream, `wsengine_smol::TcpStream`: echoes small, pipelined and large messages
//! (short reads, and writes the kernel takes in part), knows its peer, and sees the peer leave.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use smol::net::TcpListener;
use wsengine_smol::{CloseCode, Config, Error, ServerWebSocket, TcpStream};

/// Serves one connection over `TcpStream`, echoing until it ends; returns the server's view of
/// the peer address and how the connection ended.
fn serve_one(listener: TcpListener) -> smol::Task<(Option<SocketAddr>, Result<(), Error>)> {
    smol::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let tcp = TcpStream::from(tcp);
        let mut ws: ServerWebSocket = wsengine_smol::accept(tcp, Config::default()).await.unwrap();
        let peer = ws.peer_addr();
        let end = loop {
            match ws.recv().await {
                Ok(message) => {
                    if let Err(error) = ws.send(message).await {
                        break Err(error);
                    }
                }
                Err(Error::Closed(info)) if info.clean => break Ok(()),
                Err(error) => break Err(error),
            }
        };
        (peer, end)
    })
}

async fn listen() -> (TcpListener, String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    (listener, url)
}

#[test]
fn echoes_small_pipelined_and_large_messages() {
    smol::block_on(async {
        let (listener, url) = listen().await;
        let server = serve_one(listener);
        let (mut ws, _) = wsengine_smol::connect(&url).await.unwrap();

        // One at a time: every read on the server comes back short.
        for i in 0..50u32 {
            let text = format!("message {i}");
            ws.send(text.as_str()).await.unwrap();
            assert_eq!(ws.recv().await.unwrap().as_text(), Some(text.as_str()));
        }
        // Pipelined: several messages land in one read.
        for i in 0..64u32 {
            ws.send(vec![i as u8; 1000]).await.unwrap();
        }
        for i in 0..64u32 {
            assert_eq!(
                ws.recv().await.unwrap().as_binary().map(|b| &b[..]),
                Some(&[i as u8; 1000][..])
            );
        }
        // Large: more than the socket buffers hold, so the server's writes are taken in part
        // and it waits for room while the client is still sending.
        let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        ws.send(big.clone()).await.unwrap();
        let echo = ws.recv().await.unwrap();
        assert_eq!(echo.len(), big.len());
        assert!(echo.as_binary().is_some_and(|echo| echo[..] == big[..]));

        assert!(ws.close(CloseCode::NORMAL, "done").await.unwrap().clean);
        let (peer, end) = server.await;
        assert!(end.is_ok(), "{end:?}");
        assert!(peer.is_some_and(|peer| peer.ip().is_loopback()), "{peer:?}");
    });
}

#[test]
fn sees_the_peer_leave() {
    smol::block_on(async {
        let (listener, url) = listen().await;
        let server = serve_one(listener);
        let (mut ws, _) = wsengine_smol::connect(&url).await.unwrap();
        ws.send("hello").await.unwrap();
        assert_eq!(ws.recv().await.unwrap().as_text(), Some("hello"));
        // Dropping the client ends its TCP connection without a close handshake.
        drop(ws);
        let (_, end) = smol::future::or(server, async {
            smol::Timer::after(Duration::from_secs(30)).await;
            panic!("the server did not notice the peer leaving");
        })
        .await;
        assert!(end.is_err(), "an unclean end is an error: {end:?}");
    });
}

#[test]
fn converts_from_standard_and_async_io_streams() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let client = std::net::TcpStream::connect(addr).unwrap();
    let (accepted, peer) = listener.accept().unwrap();
    let from_std = TcpStream::try_from(accepted).unwrap();
    assert_eq!(from_std.peer_addr().unwrap(), peer);
    let from_async = TcpStream::from(async_io::Async::new(client).unwrap());
    assert_eq!(from_async.peer_addr().unwrap(), addr);
    from_async.set_nodelay(true).unwrap();
}

/// Many connections served by tasks on two executor threads: readiness reaches the right task
/// whichever thread collects it.
#[test]
fn serves_many_connections_from_two_threads() {
    static EXECUTOR: smol::Executor<'static> = smol::Executor::new();
    common::with_two_executor_threads(&EXECUTOR, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("ws://{}/", listener.local_addr().unwrap());
        EXECUTOR
            .spawn(async move {
                while let Ok((tcp, _)) = listener.accept().await {
                    EXECUTOR
                        .spawn(async move {
                            let tcp = TcpStream::from(tcp);
                            let Ok(ws) = wsengine_smol::accept(tcp, Config::default()).await else {
                                return;
                            };
                            // Split: the reader's task hands messages to the writer's task.
                            let (mut reader, writer) = ws.split();
                            while let Ok(message) = reader.recv().await {
                                if writer.send(message).await.is_err() {
                                    break;
                                }
                            }
                        })
                        .detach();
                }
            })
            .detach();
        let clients: Vec<_> = (0..20u32)
            .map(|client| {
                let url = url.clone();
                smol::spawn(async move {
                    let (mut ws, _) = wsengine_smol::connect(&url).await.unwrap();
                    for i in 0..100u32 {
                        let text = format!("{client}/{i}");
                        ws.send(text.as_str()).await.unwrap();
                        assert_eq!(ws.recv().await.unwrap().as_text(), Some(text.as_str()));
                    }
                    assert!(ws.close(CloseCode::NORMAL, "done").await.unwrap().clean);
                })
            })
            .collect();
        for client in clients {
            client.await;
        }
    });
}

/// The peer's last data and its FIN often arrive in one readiness event: the read after the
/// (short) read of that data must still see the end of stream.
#[test]
fn reads_the_end_that_came_with_the_last_data() {
    use smol::io::{AsyncReadExt, AsyncWriteExt};
    use std::io::{Read, Write};

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let peer = std::thread::spawn(move || {
        let (mut tcp, _) = listener.accept().unwrap();
        let mut request = [0u8; 5];
        tcp.read_exact(&mut request).unwrap();
        // Answer and close in one go: data and FIN land together.
        tcp.write_all(b"world").unwrap();
    });
    smol::block_on(async {
        let tcp = smol::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let mut stream = TcpStream::from(tcp);
        stream.write_all(b"hello").await.unwrap();
        stream.close().await.unwrap();
        let mut rest = Vec::new();
        let read = smol::future::or(async { stream.read_to_end(&mut rest).await.map(drop) }, async {
            smol::Timer::after(Duration::from_secs(30)).await;
            Err(std::io::Error::other("no end of stream after 30 s"))
        })
        .await;
        read.unwrap();
        assert_eq!(rest, b"world");
    });
    peer.join().unwrap();
}
