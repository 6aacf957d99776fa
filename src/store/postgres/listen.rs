//! The change feed of a shared PostgreSQL store: one connection per replica that `LISTEN`s on
//! the channels writers `pg_notify` inside their transactions (so a notification arrives only
//! once its change is committed), turned into [`StoreChange`]s. When the connection drops it is
//! opened again, and listeners are told to re-check everything ([`StoreChange::Resync`]): what was
//! notified while it was down is lost.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use tokio_postgres::{AsyncMessage, NoTls};
use tokio_postgres_rustls::MakeRustlsConnect;
use tokio_util::sync::CancellationToken;

use crate::store::StoreChange;

pub(super) const EVENTS: &str = "agentos_events";
pub(super) const IDENTITY: &str = "agentos_identity";
pub(super) const APPROVALS: &str = "agentos_approvals";
pub(super) const RATES: &str = "agentos_rates";

/// Changes waiting for slow listeners; one that falls further behind gets `Lagged` and re-checks.
const BACKLOG: usize = 4096;
const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Starts the feed, over TLS when `tls` is given; it runs until `stop` is cancelled.
pub(super) fn start(
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
    stop: CancellationToken,
) -> broadcast::Sender<StoreChange> {
    let (sender, _) = broadcast::channel(BACKLOG);
    let feed = sender.clone();
    tokio::spawn(async move {
        let mut first = true;
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                outcome = connect_and_listen(&config, tls.as_ref(), &feed, first) => {
                    if let Err(error) = outcome {
                        tracing::warn!(%error, "the PostgreSQL change feed dropped; reconnecting");
                    }
                }
            }
            first = false;
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(RETRY_AFTER) => {}
            }
        }
    });
    sender
}

async fn connect_and_listen(
    config: &tokio_postgres::Config,
    tls: Option<&MakeRustlsConnect>,
    feed: &broadcast::Sender<StoreChange>,
    first: bool,
) -> Result<(), tokio_postgres::Error> {
    match tls {
        Some(tls) => listen(config.connect(tls.clone()).await?, feed, first).await,
        None => listen(config.connect(NoTls).await?, feed, first).await,
    }
}

/// Listens until the connection fails.
async fn listen<S, T>(
    (client, mut connection): (tokio_postgres::Client, tokio_postgres::Connection<S, T>),
    feed: &broadcast::Sender<StoreChange>,
    first: bool,
) -> Result<(), tokio_postgres::Error>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (messages_tx, mut messages) = tokio::sync::mpsc::unbounded_channel();
    // The connection must be polled for `LISTEN` to complete and for notifications to arrive.
    let pump = tokio::spawn(async move {
        let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            let failed = message.is_err();
            if messages_tx.send(message).is_err() || failed {
                return;
            }
        }
    });
    let listening = client
        .batch_execute(&format!(
            "LISTEN {EVENTS}; LISTEN {IDENTITY}; LISTEN {APPROVALS}; LISTEN {RATES};"
        ))
        .await;
    if let Err(error) = listening {
        pump.abort();
        return Err(error);
    }
    if !first {
        let _ = feed.send(StoreChange::Resync);
    }
    while let Some(message) = messages.recv().await {
        match message? {
            AsyncMessage::Notification(note) => {
                if let Some(change) = decode(note.channel(), note.payload()) {
                    let _ = feed.send(change);
                }
            }
            AsyncMessage::Notice(notice) => tracing::debug!(notice = %notice.message(), "PostgreSQL notice"),
            _ => {}
        }
    }
    drop(client);
    Ok(())
}

fn decode(channel: &str, payload: &str) -> Option<StoreChange> {
    match channel {
        EVENTS => {
            let (owner, topic) = payload.split_once('\n')?;
            Some(StoreChange::Event {
                owner: owner.to_owned(),
                topic: topic.to_owned(),
            })
        }
        IDENTITY => Some(match payload.strip_prefix("session:") {
            Some(session) => StoreChange::Session(session.to_owned()),
            None => StoreChange::Agent(payload.to_owned()),
        }),
        APPROVALS => Some(StoreChange::Approval(payload.to_owned())),
        RATES => Some(StoreChange::RateCharges(payload.to_owned())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_decode_to_changes() {
        assert_eq!(
            decode(EVENTS, "alice\norders/new"),
            Some(StoreChange::Event {
                owner: "alice".into(),
                topic: "orders/new".into()
            })
        );
        assert_eq!(decode(EVENTS, "no separator"), None);
        assert_eq!(decode(IDENTITY, "agent-1"), Some(StoreChange::Agent("agent-1".into())));
        assert_eq!(decode(IDENTITY, "session:ab"), Some(StoreChange::Session("ab".into())));
        assert_eq!(decode(APPROVALS, "ap-1"), Some(StoreChange::Approval("ap-1".into())));
        assert_eq!(decode("other", "x"), None);
    }
}
