//! Starting and stopping the service: pool, migrations, listener (optionally SO_REUSEPORT),
//! and a graceful, bounded shutdown.

use crate::service::api::{self, AppState};
use crate::service::config::{redact_url, Config};
use crate::service::store::Store;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A listener on `addr`; with `reuse_port`, other processes may listen on the same port (the
/// kernel spreads connections), which lets a new release start beside the old one.
pub fn bind(addr: SocketAddr, reuse_port: bool) -> Result<tokio::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if reuse_port {
        socket.set_reuse_port(true)?;
    }
    socket.set_nodelay(true)?;
    socket.bind(&addr.into()).with_context(|| {
        format!("cannot listen on {addr} (in use? try --listen with another port)")
    })?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    let std_listener: std::net::TcpListener = socket.into();
    Ok(tokio::net::TcpListener::from_std(std_listener)?)
}

/// A running service.
pub struct Running {
    pub addr: SocketAddr,
    pub state: AppState,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    grace: Duration,
}

impl Running {
    /// Stop accepting, let in-flight requests finish for up to the shutdown timeout.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        match tokio::time::timeout(self.grace, self.task).await {
            Ok(joined) => Ok(joined??),
            Err(_) => {
                tracing::warn!(
                    timeout_s = self.grace.as_secs_f64(),
                    "in-flight requests did not finish in time; exiting"
                );
                Ok(())
            }
        }
    }
}

/// Connect, migrate, bind and serve in the background.
pub async fn start(config: &Config) -> Result<Running> {
    let store = Store::new(&config.database_url, config.db_pool_size)?;
    let applied = tokio::time::timeout(Duration::from_secs(60), store.migrate())
        .await
        .map_err(|_| anyhow::anyhow!("migrations did not finish within 60 s (is another replica stuck holding the migration lock?)"))?
        .with_context(|| format!("preparing the database at {}", redact_url(&config.database_url)))?;
    if !applied.is_empty() {
        tracing::info!(versions = ?applied, "applied migrations");
    }
    let listener = bind(config.listen, config.reuse_port)?;
    let addr = listener.local_addr()?;
    let state = AppState::new(
        store,
        config.admin_token.as_deref(),
        config.redis_url.as_deref(),
        config.object_storage_url.clone(),
    );
    let app = api::router(state.clone());
    let (stop, mut stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stopped.wait_for(|s| *s).await;
            })
            .await
    });
    tracing::info!(%addr, reuse_port = config.reuse_port, version = env!("CARGO_PKG_VERSION"), "listening");
    Ok(Running {
        addr,
        state,
        stop,
        task,
        grace: config.shutdown_timeout,
    })
}

/// Serve until SIGTERM or SIGINT, then shut down gracefully. A signal that arrives while the
/// service is still starting (connecting, migrating) stops it before it serves.
pub async fn run(config: Config) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let running = tokio::select! {
        r = start(&config) => r?,
        _ = term.recv() => { tracing::info!("SIGTERM while starting: stopped"); return Ok(()); }
        _ = int.recv() => { tracing::info!("SIGINT while starting: stopped"); return Ok(()); }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: draining"),
        _ = int.recv() => tracing::info!("SIGINT: draining"),
    }
    running.shutdown().await?;
    tracing::info!("stopped");
    Ok(())
}
