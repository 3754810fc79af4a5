//! Wires everything together: binds both ports, prints the READY line, serves until a signal.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::admin::{self, AdminState, SimConfig};
use crate::api::{self, ApiState};
use crate::cli::ServeConfig;
use crate::logging::log_requests;
use crate::network::{self, Network};
use crate::reader_store::{ReaderStore, ReaderStoreError};
use crate::readers::{self, ReaderAddress, Readers, ReadersSetup};
use crate::static_files;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("cannot open database {path}: {source}")]
    Store {
        path: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot open the readers' database {path}: {source}")]
    ReaderStore {
        path: String,
        #[source]
        source: ReaderStoreError,
    },
    #[error("cannot listen on 127.0.0.1:{port}: {source}")]
    Bind {
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
}

/// The READY line's JSON.
#[derive(Debug, Serialize)]
pub struct Ready {
    pub url: String,
    pub api: String,
    pub readers: Vec<ReaderAddress>,
}

async fn bind(port: u16) -> Result<TcpListener, AppError> {
    TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
        .await
        .map_err(|source| AppError::Bind { port, source })
}

/// Runs `pos-sim serve` until SIGINT or SIGTERM.
pub async fn serve(args: ServeConfig) -> Result<(), AppError> {
    let store = Store::open(&args.db).map_err(|source| AppError::Store {
        path: args.db.display().to_string(),
        source,
    })?;
    let store = Arc::new(store);
    let card_key = store.card_key().map_err(|source| AppError::Store {
        path: args.db.display().to_string(),
        source,
    })?;

    let pos_listener = bind(args.port).await?;
    let pos_port = pos_listener.local_addr()?.port();
    let api_listener = bind(args.api_port()).await?;
    let api_port = api_listener.local_addr()?.port();

    let pos_url = format!("http://127.0.0.1:{pos_port}/");
    let api_url = format!("http://127.0.0.1:{api_port}");
    let ws_base = format!("ws://127.0.0.1:{pos_port}");

    let reader_db = reader_store_path(&args.db);
    let reader_store = ReaderStore::open(&reader_db).map_err(|source| AppError::ReaderStore {
        path: reader_db.display().to_string(),
        source,
    })?;
    let readers = Arc::new(Readers::new(ReadersSetup {
        count: args.readers,
        ws_base,
        api: ApiState {
            store: store.clone(),
            card_key: card_key.clone(),
        },
        store: Arc::new(reader_store),
        tap_delay: Duration::from_millis(args.tap_delay_ms),
        country: args.reader_country.clone(),
    }));
    readers.start_forwarders();
    let network = Network::new();

    let api_router = api::router(ApiState {
        store: store.clone(),
        card_key,
    })
    .layer(axum::middleware::from_fn_with_state(
        network.clone(),
        network::latency,
    ))
    .layer(axum::middleware::from_fn_with_state("api", log_requests));

    let admin_router = admin::router(AdminState {
        readers: readers.clone(),
        network: network.clone(),
        store: store.clone(),
        config: Arc::new(SimConfig {
            backend_url: api_url.clone(),
            readers: readers.addresses(),
        }),
    });
    let readers_router = Router::new()
        .route("/readers/{id}", get(readers::upgrade))
        .with_state(readers.clone());
    let pos_router = admin_router
        .merge(readers_router)
        .merge(static_files::router(&args.www, &args.pkg))
        .layer(axum::middleware::from_fn_with_state("pos", log_requests));

    eprintln!(
        "[pos-sim] db {} · www {} · pkg {} · {} reader(s) in {} · tap delay {} ms",
        args.db.display(),
        args.www.display(),
        args.pkg.display(),
        args.readers,
        args.reader_country,
        args.tap_delay_ms
    );
    let ready = Ready {
        url: pos_url,
        api: api_url,
        readers: readers.addresses(),
    };
    let ready_json = serde_json::to_string(&ready).unwrap_or_default();
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "POS_SIM_READY {ready_json}")?;
    stdout.flush()?;
    drop(stdout);

    let pos_server = axum::serve(pos_listener, pos_router);
    tokio::select! {
        result = pos_server => {
            result?;
        }
        () = network::serve_api(api_listener, api_router, network) => {}
        signal = shutdown_signal() => {
            eprintln!("[pos-sim] {signal}: shutting down");
        }
    }
    Ok(())
}

/// The readers' own store, beside pos-sim's database: `<db>.readers.sqlite`.
pub fn reader_store_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".readers.sqlite");
    std::path::PathBuf::from(name)
}

/// Resolves on SIGINT or SIGTERM with the signal's name.
async fn shutdown_signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = tokio::signal::ctrl_c() => "SIGINT",
                _ = term.recv() => "SIGTERM",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "SIGINT"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
