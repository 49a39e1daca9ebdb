//! A TCP proxy of the tests' own between the cache and Redis (loopback only), to inject
//! network faults: added latency, a black hole, connection resets, replies cut in half.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// What the proxy does to traffic from now on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    None,
    /// Hold every reply this long before forwarding it.
    Latency(Duration),
    /// Accept and read, forward nothing, close nothing.
    BlackHole,
    /// Reset every connection, open and new.
    Reset,
    /// Forward half of the next reply, then close the connection.
    HalfReply,
    /// Reset new connections; forward on the open ones.
    RefuseNew,
    /// A black hole for the connections that subscribed before it was set (a NAT
    /// dropping an idle connection silently); forward on the others, new ones included.
    BlackHoleSubscriptions,
}

pub struct Proxy {
    pub port: u16,
    fault: Arc<watch::Sender<Fault>>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to Redis on `upstream`.
    pub async fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let fault = Arc::new(watch::Sender::new(Fault::None));
        let shared = fault.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = shared.subscribe();
                tokio::spawn(async move {
                    if matches!(*fault.borrow(), Fault::Reset | Fault::RefuseNew) {
                        reset(client);
                        return;
                    }
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        relay(client, server, fault).await;
                    }
                });
            }
        });
        Proxy { port, fault }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn set(&self, fault: Fault) {
        self.fault.send_replace(fault);
    }
}

fn reset(stream: TcpStream) {
    // A zero linger makes the close a reset (RST); it never blocks.
    #[expect(deprecated, reason = "only a non-zero linger blocks on drop")]
    let _ = stream.set_linger(Some(Duration::ZERO));
    drop(stream);
}

async fn relay(client: TcpStream, server: TcpStream, mut fault: watch::Receiver<Fault>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let mut up = [0u8; 16 * 1024];
    let mut down = [0u8; 16 * 1024];
    // Subscribed before `BlackHoleSubscriptions` was set: the connections it cuts off.
    let mut subscriber = false;
    loop {
        let black_hole = |fault: Fault, subscriber: bool| {
            fault == Fault::BlackHole || fault == Fault::BlackHoleSubscriptions && subscriber
        };
        tokio::select! {
            read = client_read.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                if *fault.borrow() != Fault::BlackHoleSubscriptions {
                    subscriber |= up[..n].windows(9).any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"));
                }
                if !black_hole(*fault.borrow(), subscriber) && server_write.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            read = server_read.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                let current = *fault.borrow();
                match current {
                    _ if black_hole(current, subscriber) => {}
                    Fault::BlackHole => {}
                    Fault::HalfReply => {
                        let _ = client_write.write_all(&down[..n.div_ceil(2)]).await;
                        return;
                    }
                    Fault::Latency(delay) => {
                        tokio::time::sleep(delay).await;
                        if client_write.write_all(&down[..n]).await.is_err() {
                            return;
                        }
                    }
                    Fault::None | Fault::Reset | Fault::RefuseNew | Fault::BlackHoleSubscriptions => {
                        if client_write.write_all(&down[..n]).await.is_err() {
                            return;
                        }
                    }
                }
            }
            changed = fault.changed() => {
                if changed.is_err() || *fault.borrow() == Fault::Reset {
                    if let (Ok(client), Ok(_)) = (client_read.reunite(client_write), server_read.reunite(server_write)) {
                        reset(client);
                    }
                    return;
                }
            }
        }
    }
}
