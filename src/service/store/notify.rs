//! One LISTEN connection, kept up: reconnects after errors and tells its owner when it is
//! listening (anything sent before may have been missed), when a notification arrives, and
//! when the connection is lost (notifications may be missed until it listens again).

use std::time::Duration;
use tokio::sync::watch;

/// What the connection saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event<'a> {
    /// LISTEN took effect: from now on every notification arrives.
    Listening,
    Notification {
        channel: &'a str,
        payload: &'a str,
    },
    /// The connection failed or could not be made; a new attempt follows in a second.
    Lost,
}

/// LISTEN on `channels` of the database `connector` reaches until `stopped` turns true,
/// calling `on` for every event.
pub async fn listen(
    connector: crate::pg::Connector,
    channels: &'static [&'static str],
    mut stopped: watch::Receiver<bool>,
    mut on: impl FnMut(Event<'_>) + Send,
) {
    use futures::StreamExt;
    let sql: String = channels.iter().map(|c| format!("LISTEN {c};")).collect();
    loop {
        if *stopped.borrow() {
            return;
        }
        match connector.connect().await {
            Ok((client, mut conn)) => {
                let mut messages = futures::stream::poll_fn(move |cx| conn.poll_message(cx));
                // The connection must be polled for LISTEN to complete.
                let mut listen = std::pin::pin!(client.batch_execute(&sql));
                let mut listening = false;
                loop {
                    tokio::select! {
                        r = &mut listen, if !listening => {
                            if let Err(e) = r {
                                tracing::warn!(error = %e, ?channels, "LISTEN failed");
                                break;
                            }
                            listening = true;
                            on(Event::Listening);
                        }
                        m = messages.next() => match m {
                            Some(Ok(tokio_postgres::AsyncMessage::Notification(n))) => {
                                on(Event::Notification { channel: n.channel(), payload: n.payload() })
                            }
                            Some(Ok(_)) => {}
                            Some(Err(e)) => {
                                tracing::warn!(error = %e, ?channels, "notification connection lost");
                                break;
                            }
                            None => break,
                        },
                        _ = stopped.changed() => return,
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, ?channels, "cannot connect for notifications"),
        }
        on(Event::Lost);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stopped.changed() => return,
        }
    }
}
