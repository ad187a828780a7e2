//! The Redis backend: several server processes share one history, so a
//! notification published on any of them reaches browsers on all of them,
//! and a restart loses nothing.
//!
//! Three keys under a prefix hold the shared state:
//! - `<prefix>:epoch`: the epoch, set once (`SET NX`) and kept across
//!   restarts of the servers;
//! - `<prefix>:next-id`: the id counter (`INCR`);
//! - `<prefix>:stream`: a Redis Stream of notifications, trimmed to about
//!   the retention size (`XADD … MAXLEN ~ N`). Entry ids are `<id>-0`, so
//!   the stream's order is the notifications' order.
//!
//! Publishing runs one Lua script that increments the counter and appends
//! to the stream atomically: two processes publishing at once can never
//! leave ids and stream order disagreeing. A publish is not delivered
//! locally by the publisher; every process, the publisher included, has
//! one reader task that follows the stream (`XREAD BLOCK`) and hands each
//! entry to [`Hub::deliver_local`] — one Redis reader per process, never
//! one per browser. When Redis goes away the reader logs it, retries with
//! a growing pause, and on recovery reads on from the last id it saw, so
//! nothing published after Redis came back is lost or delivered twice.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};

use crate::{Epoch, Hub, HubConfig, Notification, NotificationId, PublishError, Shared};

/// How long a command may take before Redis counts as unavailable.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one `XREAD` waits for new entries before asking again; also how
/// long a dropped hub's reader may outlive it.
const READ_BLOCK: Duration = Duration::from_secs(2);
/// Entries read at most per `XREAD`.
const READ_BATCH: usize = 512;
/// Pauses between reconnection attempts grow up to this.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// INCR the counter, XADD the notification under `<id>-0`, return the id.
/// Refused while the epoch key is missing: Redis then lost its data, and
/// until a reader has restored the epoch and the counter, a new id could
/// repeat one already delivered and be skipped by every reader.
const PUBLISH_SCRIPT: &str = r"
if redis.call('EXISTS', KEYS[3]) == 0 then
  return redis.error_reply('NOEPOCH the shared history is being restored')
end
local id = redis.call('INCR', KEYS[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], id .. '-0', 'text', ARGV[1], 'published_at', ARGV[2])
return id
";

/// After an outage: if Redis came back without its data, put back this
/// process's epoch and raise the counter to at least the newest id it has
/// seen, so ids keep increasing in the epoch. Returns the epoch in force.
const RESTORE_SCRIPT: &str = r"
if redis.call('SET', KEYS[1], ARGV[1], 'NX') then
  local counter = tonumber(redis.call('GET', KEYS[2]) or '0')
  if counter < tonumber(ARGV[2]) then
    redis.call('SET', KEYS[2], ARGV[2])
  end
end
return redis.call('GET', KEYS[1])
";

/// Why the Redis backend could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot use Redis at {url}: {source}")]
pub struct RedisError {
    url: String,
    source: redis::RedisError,
}

#[derive(Debug)]
pub(crate) struct RedisBackend {
    url: String,
    prefix: String,
    publisher: ConnectionManager,
    script: redis::Script,
    keys: Keys,
    history: usize,
}

#[derive(Debug, Clone)]
struct Keys {
    epoch: String,
    counter: String,
    stream: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        Keys {
            epoch: format!("{prefix}:epoch"),
            counter: format!("{prefix}:next-id"),
            stream: format!("{prefix}:stream"),
        }
    }
}

impl RedisBackend {
    /// Appends `text` to the shared stream; the reader delivers it.
    pub(crate) async fn publish(
        &self,
        text: &str,
        published_at: &str,
    ) -> Result<NotificationId, PublishError> {
        let mut conn = self.publisher.clone();
        self.script
            .key(&self.keys.counter)
            .key(&self.keys.stream)
            .key(&self.keys.epoch)
            .arg(text)
            .arg(published_at)
            .arg(self.history)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| PublishError::Unavailable(e.to_string()))
    }
}

impl Hub {
    /// A hub whose history lives in Redis at `url`, shared with every other
    /// process using the same `prefix`. Fails if Redis cannot be reached now;
    /// once running, it rides out Redis outages.
    pub async fn redis(url: &str, prefix: &str, config: HubConfig) -> Result<Hub, RedisError> {
        let fail = |source| RedisError {
            url: url.to_owned(),
            source,
        };
        let client = redis::Client::open(url).map_err(fail)?;
        let manager_config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1);
        let mut publisher = ConnectionManager::new_with_config(client.clone(), manager_config)
            .await
            .map_err(fail)?;
        let keys = Keys::new(prefix);
        let _: bool = publisher
            .set_nx(&keys.epoch, Epoch::random().as_str())
            .await
            .map_err(fail)?;
        let epoch: String = publisher.get(&keys.epoch).await.map_err(fail)?;
        let epoch = Epoch::parse(&epoch).unwrap_or_else(Epoch::random);

        // Warm the local view with the newest retained entries, oldest first.
        let newest: StreamRangeReply = publisher
            .xrevrange_count(&keys.stream, "+", "-", config.history)
            .await
            .map_err(fail)?;
        let backend = RedisBackend {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            publisher,
            script: redis::Script::new(PUBLISH_SCRIPT),
            keys: keys.clone(),
            history: config.history,
        };
        let hub = Hub::with_backend(config, crate::Backend::Redis(backend), epoch);
        let mut last_id = "0-0".to_owned();
        for entry in newest.ids.iter().rev() {
            if let Some(n) = notification(entry) {
                hub.deliver_local(Arc::new(n));
                last_id = entry.id.clone();
            }
        }
        tokio::spawn(follow(Arc::downgrade(&hub.shared), client, keys, last_id));
        Ok(hub)
    }

    /// Whether this hub's history is shared through Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self.shared.backend, crate::Backend::Redis(_))
    }

    /// The Redis URL and key prefix this hub shares its history through, for
    /// other traffic between the same processes (Socket.IO's broadcasts);
    /// `None` for an in-memory hub.
    pub fn redis_location(&self) -> Option<(&str, &str)> {
        match &self.shared.backend {
            crate::Backend::Redis(redis) => Some((&redis.url, &redis.prefix)),
            crate::Backend::Memory => None,
        }
    }
}

/// Rebuilds a notification from a stream entry `<id>-0`.
fn notification(entry: &StreamId) -> Option<Notification> {
    let id: NotificationId = entry.id.split('-').next()?.parse().ok()?;
    let text: String = entry.get("text")?;
    let published_at: String = entry.get("published_at")?;
    let at = humantime::parse_rfc3339(&published_at).unwrap_or_else(|_| SystemTime::now());
    Some(Notification::new(id, text, at))
}

/// Restores the epoch and counter if Redis lost them (see RESTORE_SCRIPT).
async fn restore(
    conn: &mut MultiplexedConnection,
    keys: &Keys,
    hub: &Weak<Shared>,
) -> redis::RedisResult<()> {
    let Some(hub) = hub.upgrade().map(|shared| Hub { shared }) else {
        return Ok(());
    };
    let epoch: String = redis::Script::new(RESTORE_SCRIPT)
        .key(&keys.epoch)
        .key(&keys.counter)
        .arg(hub.epoch().as_str())
        .arg(hub.newest_id())
        .invoke_async(conn)
        .await?;
    if epoch != hub.epoch().as_str() {
        tracing::error!(ours = %hub.epoch(), theirs = %epoch, "the shared history now has another epoch; restart this process to join it");
    }
    Ok(())
}

/// The per-process reader: follows the stream from `last_id` and delivers
/// every entry locally, until the hub is dropped.
async fn follow(hub: Weak<Shared>, client: redis::Client, keys: Keys, mut last_id: String) {
    let stream = keys.stream.clone();
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(READ_BLOCK + COMMAND_TIMEOUT));
    let options = StreamReadOptions::default()
        .block(READ_BLOCK.as_millis() as usize)
        .count(READ_BATCH);
    let mut conn: Option<MultiplexedConnection> = None;
    let mut pause = Duration::from_millis(100);
    let mut failing = false;
    while hub.strong_count() > 0 {
        let result = async {
            if conn.is_none() {
                conn = Some(
                    client
                        .get_multiplexed_async_connection_with_config(&config)
                        .await?,
                );
            }
            let c = conn.as_mut().expect("just connected");
            if failing {
                restore(c, &keys, &hub).await?;
            }
            let reply: Option<StreamReadReply> =
                c.xread_options(&[&stream], &[&last_id], &options).await?;
            Ok::<_, redis::RedisError>(reply)
        }
        .await;
        match result {
            Ok(reply) => {
                if failing {
                    tracing::info!(from = %last_id, "redis is back; catching up from the stream");
                    failing = false;
                    pause = Duration::from_millis(100);
                }
                let Some(hub) = hub.upgrade().map(|shared| Hub { shared }) else {
                    return;
                };
                for key in reply.map(|r| r.keys).unwrap_or_default() {
                    for entry in key.ids {
                        if let Some(n) = notification(&entry) {
                            hub.deliver_local(Arc::new(n));
                        }
                        last_id = entry.id;
                    }
                }
            }
            Err(err) => {
                if !failing {
                    tracing::warn!(%err, "redis is unavailable; live delivery paused, retrying");
                    failing = true;
                }
                conn = None;
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
        }
    }
}
