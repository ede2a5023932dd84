//! Starting and stopping the service: pool, migrations, listener (optionally SO_REUSEPORT),
//! and a graceful, bounded shutdown.

use crate::service::api;
use crate::service::config::Config;
use crate::service::state::AppState;
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

/// How long a process that hands over keeps answering (with `Connection: close`).
const HANDOVER_DRAIN: Duration = Duration::from_secs(2);

/// Adds `Connection: close` to responses while draining.
async fn close_when_draining(
    axum::extract::State(draining): axum::extract::State<
        std::sync::Arc<std::sync::atomic::AtomicBool>,
    >,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let mut resp = next.run(req).await;
    if draining.load(std::sync::atomic::Ordering::SeqCst) {
        resp.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
    }
    resp
}

/// A running service.
pub struct Running {
    pub addr: SocketAddr,
    /// The private listener's address, when there is one.
    pub private_addr: Option<SocketAddr>,
    /// A handle on the shared listener for steering its reuseport group (see [`crate::net::reuseport`]).
    steering: Option<std::net::TcpListener>,
    /// Set while handing over: every response says `Connection: close`.
    draining: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub state: AppState,
    /// Webhook delivery workers (stopped after the listener).
    webhooks: crate::service::webhooks::delivery::Workers,
    mail: crate::service::mail::delivery::Workers,
    /// Calendar sync and write-back (stopped after the listener).
    caldav: crate::service::caldav::Workers,
    stop: watch::Sender<bool>,
    task: JoinHandle<std::io::Result<()>>,
    grace: Duration,
}

impl Running {
    /// Hand over to a successor listening on the same port: steer every new connection to it,
    /// give this listener a moment to accept what was already queued on it, then shut down
    /// gracefully. No queued connection is reset.
    pub async fn hand_over(self) -> Result<()> {
        if let Some(l) = &self.steering {
            crate::net::reuseport::steer_to(l, 1)
                .context("steering connections to the successor")?;
        }
        // Keep answering for a moment, closing each keep-alive connection after its next
        // response, so clients reconnect (to the successor) instead of racing our close.
        self.draining
            .store(true, std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(HANDOVER_DRAIN.min(self.grace)).await;
        self.shutdown().await
    }

    /// Stop accepting, let in-flight requests finish for up to the shutdown timeout.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        let served = match tokio::time::timeout(self.grace, self.task).await {
            Ok(joined) => joined?,
            Err(_) => {
                tracing::warn!(
                    timeout_s = self.grace.as_secs_f64(),
                    "in-flight requests did not finish in time; exiting"
                );
                Ok(())
            }
        };
        self.webhooks.shutdown(self.grace).await;
        self.mail.shutdown(self.grace).await;
        self.caldav.shutdown(self.grace).await;
        Ok(served?)
    }
}

/// Connect, migrate, bind and serve in the background. A database or Redis that cannot be
/// used as configured stops the start with the variable to change
/// ([`crate::service::startup`]).
pub async fn start(config: &Config) -> Result<Running> {
    let (db, redis) = tokio::join!(
        crate::service::startup::check_database(config),
        crate::service::startup::check_redis(config)
    );
    if let Some(p) = [db, redis].into_iter().find_map(Result::err) {
        return Err(anyhow::anyhow!("{p}"));
    }
    let store = Store::connect(config.database.clone(), config.db_pool_size)?;
    let applied = tokio::time::timeout(Duration::from_secs(60), store.migrate())
        .await
        .map_err(|_| anyhow::anyhow!("migrations did not finish within 60 s (is another replica stuck holding the migration lock?)"))?
        .with_context(|| format!("preparing the database at {}", config.database.describe()))?;
    if !applied.is_empty() {
        tracing::info!(versions = ?applied, "applied migrations");
    }
    let listener = bind(config.listen, config.reuse_port)?;
    let addr = listener.local_addr()?;
    // In a reuseport group, keep traffic on the incumbent (index 0) until it hands over; for the
    // first process that is itself. A duplicate handle lets `hand_over` re-steer later.
    let steering = if config.reuse_port {
        use std::os::fd::{AsFd, FromRawFd, IntoRawFd};
        let dup = listener.as_fd().try_clone_to_owned()?;
        // SAFETY: `dup` is a fresh, owned descriptor of the listening socket.
        let dup = unsafe { std::net::TcpListener::from_raw_fd(dup.into_raw_fd()) };
        crate::net::reuseport::steer_to(&dup, 0)
            .context("attaching the reuseport steering program")?;
        Some(dup)
    } else {
        None
    };
    let private = match config.private_listen {
        Some(a) => Some(bind(a, false)?),
        None => None,
    };
    let private_addr = match &private {
        Some(l) => Some(l.local_addr()?),
        None => None,
    };
    let mut state = AppState::new(
        store,
        config.admin_token.as_deref(),
        config.redis_url.as_deref(),
        config.object_storage_url.clone(),
        config.oci.as_ref(),
    )
    .with_rate_limits(
        config.rate_limits,
        config.redis_url.as_deref(),
        config.redis_timeout,
    );
    state.webhooks = config.webhooks.clone();
    state.page_key = match &config.page_key {
        Some(k) => crate::service::state::PageKey::new(k.as_bytes()),
        None => {
            tracing::warn!("CALOPS_PAGE_KEY_REF is not set: the booking pages sign their links with a random key, so links stop working when the service restarts and differ between replicas");
            crate::service::state::PageKey::random()
        }
    };
    let webhooks =
        crate::service::webhooks::delivery::spawn(state.store.clone(), config.webhooks.clone());
    let mail = crate::service::mail::delivery::spawn(
        state.store.clone(),
        config.mail.clone(),
        state.page_key.clone(),
        state.metrics.clone(),
        config.oci.clone(),
    )
    .await
    .context("starting the mail workers")?;
    // Calendar passwords are sealed with the same key as webhook secrets.
    state.caldav = crate::service::caldav::Runtime::new(
        config.caldav.clone(),
        config.webhooks.secret_key.clone(),
    );
    let caldav = crate::service::caldav::spawn(state.store.clone(), state.caldav.clone());
    let draining = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let app = api::router_with(
        state.clone(),
        crate::service::web::routes(),
        api::Listener::public(config.metrics_public),
    )
    .layer(axum::middleware::from_fn_with_state(
        draining.clone(),
        close_when_draining,
    ));
    let (stop, stopped) = watch::channel(false);
    {
        // One notification connection keeps both caches fresh: the slot cache (when on) and
        // the cache of verified API keys, which a revocation anywhere empties at once.
        let (store, stopped, keys, slot_cache) = (
            state.store.clone(),
            stopped.clone(),
            state.keys.clone(),
            config.slot_cache,
        );
        tokio::spawn(async move {
            use crate::service::store::{cache, notify::Event};
            store
                .keep_cache_fresh(stopped, slot_cache, move |e| match e {
                    Event::Listening => keys.set_active(true),
                    Event::Notification { payload, .. } if payload == cache::KEYS => keys.clear(),
                    Event::Notification { .. } => {}
                    Event::Lost => keys.set_active(false),
                })
                .await
        });
    }
    if let (Some(settings), Some(client)) = (&config.telemetry, &config.oci) {
        crate::service::telemetry::exporter::spawn(
            state.clone(),
            settings.clone(),
            client.clone(),
            stopped.clone(),
        );
    }
    crate::service::calendar::spawn_writer(
        state.store.clone(),
        state.objects.clone(),
        stopped.clone(),
    );
    if let Some(private) = private {
        let app = api::router(state.clone(), api::Listener::PRIVATE);
        let mut stopped = stopped.clone();
        tokio::spawn(async move {
            let app = app.into_make_service_with_connect_info::<SocketAddr>();
            let _ = axum::serve(private, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.wait_for(|s| *s).await;
                })
                .await;
        });
    }
    let mut stopped = stopped;
    let task = tokio::spawn(async move {
        // The peer address is the client's IP for the booking pages' rate limits.
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopped.wait_for(|s| *s).await;
        })
        .await
    });
    tracing::info!(%addr, reuse_port = config.reuse_port, version = env!("CARGO_PKG_VERSION"), "listening");
    Ok(Running {
        addr,
        private_addr,
        steering,
        draining,
        state,
        webhooks,
        mail,
        caldav,
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
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let running = tokio::select! {
        r = start(&config) => r?,
        _ = term.recv() => { tracing::info!("SIGTERM while starting: stopped"); return Ok(()); }
        _ = int.recv() => { tracing::info!("SIGINT while starting: stopped"); return Ok(()); }
    };
    let hand_over = tokio::select! {
        _ = term.recv() => { tracing::info!("SIGTERM: draining"); false }
        _ = int.recv() => { tracing::info!("SIGINT: draining"); false }
        _ = usr1.recv() => { tracing::info!("SIGUSR1: handing over to the new release, then draining"); true }
    };
    if hand_over {
        running.hand_over().await?;
    } else {
        running.shutdown().await?;
    }
    tracing::info!("stopped");
    Ok(())
}
