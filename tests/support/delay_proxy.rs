//! A proxy that delays each reply on its own and can refuse new connections, for a
//! process whose Redis is slow and whose subscription is gone at the same time.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use super::{RedisServer, eventually};

/// A proxy whose every reply from Redis reaches the client `delay` after Redis sent it
/// (replies do not queue behind each other's delays, requests are never held), and which
/// can refuse new connections while open ones keep working. Unlike `super::proxy`, both
/// at once: a process whose Redis is slow and whose subscription is gone.
pub struct DelayProxy {
    port: u16,
    delay_ms: Arc<AtomicU64>,
    refuse_new: Arc<AtomicBool>,
}

impl DelayProxy {
    pub async fn start(upstream: u16) -> DelayProxy {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let delay_ms = Arc::new(AtomicU64::new(0));
        let refuse_new = Arc::new(AtomicBool::new(false));
        let (delay, refuse) = (delay_ms.clone(), refuse_new.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if refuse.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let delay = delay.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await else {
                        return;
                    };
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let up = tokio::spawn(async move {
                        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
                    });
                    let (replies, mut due) = tokio::sync::mpsc::unbounded_channel();
                    let down = tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                            let at = tokio::time::Instant::now() + Duration::from_millis(delay.load(Ordering::SeqCst));
                            if replies.send((at, buf[..n].to_vec())).is_err() {
                                return;
                            }
                        }
                    });
                    while let Some((at, bytes)) = due.recv().await {
                        tokio::time::sleep_until(at).await;
                        if client_write.write_all(&bytes).await.is_err() {
                            break;
                        }
                    }
                    up.abort();
                    down.abort();
                });
            }
        });
        DelayProxy {
            port,
            delay_ms,
            refuse_new,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn delay(&self, ms: u64) {
        self.delay_ms.store(ms, Ordering::SeqCst);
    }

    /// Drops every subscription; the cache behind this proxy cannot subscribe again.
    pub async fn lose_subscription(&self, redis: &RedisServer) {
        self.refuse_new.store(true, Ordering::SeqCst);
        super::kill_subscriptions(redis);
        eventually("only the direct cache is subscribed again", async || {
            super::subscribers(redis) == 1
        })
        .await;
    }
}
