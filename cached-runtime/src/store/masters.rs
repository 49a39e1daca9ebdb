//! A topology's masters, for what must reach every one of them: client tracking (the
//! near cache) and `INFO` (the server's own stats), each on a connection of its own.

use std::time::Duration;

use futures_util::future::try_join_all;
use redis::{AsyncConnectionConfig, Client, RedisError};
use tokio::sync::watch;

use super::StoreError;

/// Where tracking must be on, and whose `INFO` says how Redis is doing: a topology's masters.
pub(crate) trait Masters: Send + Sync + 'static {
    /// The clients of every master that serves keys now.
    fn masters(&self) -> impl Future<Output = Result<Vec<Client>, RedisError>> + Send;

    /// Changes when the topology connects anew, perhaps to another master: the masters
    /// are checked at once rather than at the next regular check. By default, never.
    fn reconnects(&self) -> watch::Receiver<u64> {
        watch::Sender::new(0).subscribe()
    }
}

/// The `INFO` text of every master, each read on a connection of its own (made and
/// dropped here: this is not on any call's path), all within `timeout`.
pub(crate) async fn info<M: Masters>(topology: &M, timeout: Duration) -> Result<Vec<String>, StoreError> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout));
    let read = async {
        let masters: Vec<Client> = topology.masters().await?;
        let each = masters.iter().map(|master| {
            let config = &config;
            async move {
                let mut connection = master.get_multiplexed_async_connection_with_config(config).await?;
                redis::cmd("INFO").query_async::<String>(&mut connection).await
            }
        });
        try_join_all(each).await
    };
    Ok(tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| StoreError::Timeout(timeout))??)
}
