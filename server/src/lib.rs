//! Kairos HTTP server (actix-web): the `/api/v1` API and the embedded web page.

pub mod error;
pub mod routes;

use std::sync::Arc;

use actix_web::{App, HttpServer, web};
use kairos_indexer::Analyzers;
use kairos_store::Store;

pub use error::ApiError;

/// What every request handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub analyzers: Arc<Analyzers>,
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
            .app_data(web::PathConfig::default())
            .configure(routes::configure);
    }
}

/// Serves until stopped.
pub async fn serve(state: AppState, addr: &str) -> std::io::Result<()> {
    HttpServer::new(move || App::new().configure(configure(state.clone())))
        .bind(addr)?
        .run()
        .await
}
