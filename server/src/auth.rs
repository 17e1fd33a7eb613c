//! API keys. Writes (uploads, asset changes and deletions) always need one; reads need one when
//! the archive is served `--private`. A key comes as `Authorization: Bearer KEY`, or, for `GET`
//! only, as `?api_key=KEY` (a `<video>` or `<img>` element cannot send headers).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, header};
use actix_web::middleware::Next;
use actix_web::web;

use crate::{ApiError, AppState};

/// How long a checked key is trusted before the catalog is asked again: a key revoked with
/// `kairos keys revoke` stops working within this time.
pub const KEY_CACHE_TTL: Duration = Duration::from_secs(30);

/// Keys checked recently (by hash), so that a busy client costs no catalog read per request.
#[derive(Debug, Default)]
pub struct KeyCache {
    checked: Mutex<HashMap<String, (bool, Instant)>>,
}

impl KeyCache {
    async fn is_valid(&self, state: &AppState, secret: &str) -> Result<bool, ApiError> {
        let hash = kairos_store::keys::key_hash(secret);
        if let Some((valid, at)) = self.checked.lock().expect("key cache").get(&hash)
            && at.elapsed() < KEY_CACHE_TTL
        {
            return Ok(*valid);
        }
        let valid = state.store.catalog.check_key(secret).await?.is_some();
        let mut checked = self.checked.lock().expect("key cache");
        if checked.len() > 10_000 {
            // Many wrong keys: forget them all rather than grow.
            checked.clear();
        }
        checked.insert(hash, (valid, Instant::now()));
        Ok(valid)
    }
}

/// Whether a request changes the archive.
fn is_write(method: &Method, path: &str) -> bool {
    let reads_by_post = ["/api/v1/search", "/api/v1/search/image"];
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && !reads_by_post.contains(&path)
}

/// Endpoints that never need a key: the web UI's page, health checks, the API description.
fn is_public(path: &str) -> bool {
    !path.starts_with("/api/") || path == "/api/v1/health" || path == "/api/v1/openapi.json"
}

/// The key a request carries, if any.
fn presented_key(req: &ServiceRequest) -> Option<String> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value.to_str().ok()?.trim();
        return value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .map(|k| k.trim().to_string());
    }
    if req.method() == Method::GET {
        return web::Query::<HashMap<String, String>>::from_query(req.query_string())
            .ok()?
            .get("api_key")
            .cloned();
    }
    None
}

/// The middleware: refuses a request that needs a key and lacks a valid one.
pub async fn guard(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let path = req.path().to_string();
    let write = is_write(req.method(), &path);
    let state = req
        .app_data::<web::Data<AppState>>()
        .expect("the app has its state")
        .clone();
    let needs_key = !is_public(&path) && (write || state.config.private);
    if needs_key {
        let what = if write {
            "changes to the archive"
        } else {
            "this private archive"
        };
        match presented_key(&req) {
            None => {
                return Err(ApiError::Unauthorized {
                    code: "unauthorized",
                    message: format!(
                        "{} {path}: {what} need an API key: send `Authorization: Bearer KEY` (an operator creates one with `kairos keys create --name NAME`)",
                        req.method()
                    ),
                }
                .into());
            }
            Some(key) => {
                if !state.keys.is_valid(&state, &key).await? {
                    let shown: String = key.chars().take(15).collect();
                    return Err(ApiError::Unauthorized {
                        code: "invalid_api_key",
                        message: format!("API key {shown}… is unknown or revoked"),
                    }
                    .into());
                }
            }
        }
    }
    next.call(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn searches_are_reads_even_by_post() {
        assert!(!is_write(&Method::POST, "/api/v1/search"));
        assert!(!is_write(&Method::POST, "/api/v1/search/image"));
        assert!(is_write(&Method::POST, "/api/v1/uploads"));
        assert!(is_write(&Method::DELETE, "/api/v1/assets/x"));
        assert!(is_write(&Method::PATCH, "/api/v1/assets/x"));
        assert!(!is_write(&Method::GET, "/api/v1/assets/x"));
        assert!(is_public("/"));
        assert!(is_public("/api/v1/health"));
        assert!(!is_public("/api/v1/metrics"));
    }
}
