//! Kairos HTTP server (actix-web): the `/api/v1` API, its OpenAPI document and the embedded web UI.
//!
//! - [`routes`]: the handlers, one module per resource;
//! - [`auth`]: API keys on writes (and on reads when the archive is private);
//! - [`jobs`]: upload ingest jobs run in the background, one at a time, with live progress;
//! - [`metrics`]: Prometheus counters and latency histograms per route;
//! - [`error`]: the table of stable error codes.

pub mod auth;
pub mod error;
pub mod jobs;
pub mod metrics;
pub mod openapi;
pub mod routes;

use std::sync::Arc;

use actix_web::middleware::{Condition, from_fn};
use actix_web::{App, HttpServer, web};
use kairos_indexer::Analyzers;
use kairos_store::Store;

pub use error::ApiError;

/// How the server is run (from `kairos serve` flags).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Whether reads (search, assets, media…) need an API key too. Writes always do.
    pub private: bool,
    /// Origins allowed to call the API from a browser (`*` for any); none: same origin only.
    pub cors_origins: Vec<String>,
    /// Largest upload request, bytes.
    pub max_upload_bytes: u64,
    /// Folders (canonical) whose files `POST /api/v1/ingest` may index; none: that endpoint is off.
    pub ingest_roots: Vec<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            private: false,
            cors_origins: Vec::new(),
            max_upload_bytes: 4 << 30,
            ingest_roots: Vec::new(),
        }
    }
}

/// What every request handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub analyzers: Arc<Analyzers>,
    pub config: Arc<ServerConfig>,
    pub jobs: Arc<jobs::JobRunner>,
    pub metrics: Arc<metrics::Metrics>,
    pub keys: Arc<auth::KeyCache>,
}

impl AppState {
    /// State for a server over `store` with `analyzers`.
    pub fn new(store: Store, analyzers: Arc<Analyzers>, config: ServerConfig) -> Self {
        Self {
            jobs: Arc::new(jobs::JobRunner::new(store.clone(), analyzers.clone())),
            store,
            analyzers,
            config: Arc::new(config),
            metrics: Arc::new(metrics::Metrics::default()),
            keys: Arc::new(auth::KeyCache::default()),
        }
    }
}

/// Largest example image accepted by `POST /api/v1/search/image`.
pub const MAX_IMAGE_UPLOAD: usize = 25 * 1024 * 1024;

/// Registers every route on an actix app (shared by `serve` and the tests).
pub fn configure(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(web::Data::new(state))
            .app_data(
                web::JsonConfig::default()
                    .limit(1 << 20)
                    .error_handler(|err, _| {
                        ApiError::InvalidRequest {
                            code: "invalid_json",
                            message: format!("request body: {err}"),
                        }
                        .into()
                    }),
            )
            .app_data(web::QueryConfig::default().error_handler(|err, _| {
                ApiError::InvalidRequest {
                    code: "invalid_query",
                    message: format!("query string: {err}"),
                }
                .into()
            }))
            .app_data(web::PathConfig::default())
            .configure(routes::configure);
    }
}

/// The CORS policy of `config`.
fn cors(config: &ServerConfig) -> actix_cors::Cors {
    use actix_web::http::{Method, header};
    let mut cors = actix_cors::Cors::default()
        .allowed_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allowed_headers([header::AUTHORIZATION, header::CONTENT_TYPE, header::RANGE])
        .expose_headers([header::CONTENT_RANGE, header::CONTENT_DISPOSITION])
        .max_age(3600);
    for origin in &config.cors_origins {
        cors = if origin == "*" {
            cors.allow_any_origin()
        } else {
            cors.allowed_origin(origin)
        };
    }
    cors
}

/// Serves until stopped.
pub async fn serve(state: AppState, addr: &str) -> std::io::Result<()> {
    routes::jobs::clean_incoming(state.store.data_dir());
    state.jobs.resume_interrupted().await;
    HttpServer::new(move || app(state.clone()))
        .bind(addr)?
        .run()
        .await
}

/// The app as `serve` builds it, for tests (`actix_web::test::init_service(app(state))`).
pub fn app(
    state: AppState,
) -> App<
    impl actix_web::dev::ServiceFactory<
        actix_web::dev::ServiceRequest,
        Config = (),
        Response = actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let config = state.config.clone();
    App::new()
        .wrap(from_fn(auth::guard))
        .wrap(Condition::new(
            !config.cors_origins.is_empty(),
            cors(&config),
        ))
        .wrap(from_fn(metrics::observe))
        .configure(configure(state))
}
