//! `POST /api/v1/search` (words, filters, "find similar") and `POST /api/v1/search/image`.

use actix_multipart::Multipart;
use actix_web::{HttpResponse, post, web};
use futures_util::StreamExt;
use kairos_indexer::query::SearchOutcome;
use kairos_indexer::{QueryInput, query};
use kairos_store::{AssetKind, Filters, Group, Mode};
use serde::Deserialize;

use super::{invalid, thumbnail_url};
use crate::error::ApiError;
use crate::{AppState, MAX_IMAGE_UPLOAD};

/// `POST /api/v1/search` body.
#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchBody {
    /// Words to search for (tantivy syntax: quotes make phrases).
    pub query: Option<String>,
    /// An asset id or moment id: find what looks like it (or, for a recording, what says
    /// what it says). The asset itself is left out of the results.
    pub similar_to: Option<String>,
    /// image, video or audio.
    pub kind: Option<String>,
    pub collection: Option<String>,
    /// ISO 639-1 language of the asset (`en`, `fr`…).
    pub language: Option<String>,
    /// Capture date from (RFC 3339 or YYYY-MM-DD), inclusive.
    pub from: Option<String>,
    /// Capture date to (RFC 3339 or YYYY-MM-DD), inclusive.
    pub to: Option<String>,
    /// hybrid (default), visual or keyword.
    pub mode: Option<String>,
    /// assets (one hit per asset, the default) or moments (one hit per moment).
    pub group: Option<String>,
    /// 1–200, default 20.
    pub limit: Option<usize>,
    pub offset: Option<usize>,
    /// Candidates each signal (words, each vector space) brings to the ranking, from
    /// `offset + limit` to 10000; default twice `offset + limit`, at least 100. Fewer make a
    /// search cheaper, and its ranking, facets and `total` (both counted over the candidates)
    /// rougher.
    pub candidates: Option<usize>,
}

impl SearchBody {
    fn into_input(self, image: Option<Vec<u8>>) -> Result<QueryInput, ApiError> {
        let kind = self
            .kind
            .as_deref()
            .map(|k| k.parse::<AssetKind>().map_err(|e| invalid("kind", e)))
            .transpose()?;
        let mode = match self.mode.as_deref() {
            Some(m) => m.parse::<Mode>().map_err(|e| invalid("mode", e))?,
            None => Mode::Hybrid,
        };
        let group = match self.group.as_deref() {
            Some(g) => g.parse::<Group>().map_err(|e| invalid("group", e))?,
            None => Group::Assets,
        };
        let limit = self.limit.unwrap_or(20);
        if !(1..=200).contains(&limit) {
            return Err(invalid(
                "limit",
                format!("{limit} is not between 1 and 200"),
            ));
        }
        let offset = self.offset.unwrap_or(0);
        if offset > 10_000 {
            return Err(invalid("offset", format!("{offset} is past 10000")));
        }
        let nonempty = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
        Ok(QueryInput {
            text: self.query,
            image,
            similar_to: nonempty(self.similar_to),
            filters: Filters {
                kind,
                collection: nonempty(self.collection),
                language: nonempty(self.language),
                captured_after: nonempty(self.from)
                    .as_deref()
                    .map(|v| Filters::parse_date("from", v, false))
                    .transpose()?,
                captured_before: nonempty(self.to)
                    .as_deref()
                    .map(|v| Filters::parse_date("to", v, true))
                    .transpose()?,
            },
            mode,
            group,
            limit,
            offset,
            candidates: self.candidates,
        })
    }
}

/// Search the archive with words and/or "find similar", with filters, facets and paging.
#[utoipa::path(
    tag = "search",
    request_body = SearchBody,
    responses(
        (status = 200, description = "A page of assets (or moments) with facet counts", body = SearchOutcome),
        (status = 400, description = "`invalid_query`, `invalid_json`", body = crate::openapi::ErrorBody),
        (status = 404, description = "`asset_not_found`: `similar_to` names nothing", body = crate::openapi::ErrorBody),
        (status = 409, description = "`similar_unavailable`", body = crate::openapi::ErrorBody),
    )
)]
#[post("/api/v1/search")]
pub async fn search(
    state: web::Data<AppState>,
    body: web::Json<SearchBody>,
) -> Result<HttpResponse, ApiError> {
    let input = body.into_inner().into_input(None)?;
    let outcome = query::search(&state.store, &state.analyzers, input).await?;
    Ok(HttpResponse::Ok().json(linked(outcome)))
}

/// Search with an example image (multipart: an `image` file part and, optionally, the fields of
/// the JSON search as text parts).
#[utoipa::path(
    tag = "search",
    request_body(content_type = "multipart/form-data", description = "`image` (the example, ≤ 25 MiB) and any SearchBody field as a text part"),
    responses(
        (status = 200, description = "Results", body = SearchOutcome),
        (status = 400, description = "`invalid_multipart`, `invalid_image`, `invalid_query`", body = crate::openapi::ErrorBody),
        (status = 413, description = "`payload_too_large`", body = crate::openapi::ErrorBody),
    )
)]
#[post("/api/v1/search/image")]
pub async fn search_image(
    state: web::Data<AppState>,
    mut form: Multipart,
) -> Result<HttpResponse, ApiError> {
    let bad = |m: String| ApiError::InvalidRequest {
        code: "invalid_multipart",
        message: m,
    };
    let mut image: Option<Vec<u8>> = None;
    let mut fields = serde_json::Map::new();
    while let Some(part) = form.next().await {
        let mut part = part.map_err(|e| bad(format!("multipart body: {e}")))?;
        let name = part.name().unwrap_or("").to_string();
        let mut data = Vec::new();
        while let Some(chunk) = part.next().await {
            let chunk = chunk.map_err(|e| bad(format!("part {name:?}: {e}")))?;
            if data.len() + chunk.len() > MAX_IMAGE_UPLOAD {
                return Err(ApiError::InvalidRequest {
                    code: "payload_too_large",
                    message: format!("part {name:?} exceeds {} MiB", MAX_IMAGE_UPLOAD >> 20),
                });
            }
            data.extend_from_slice(&chunk);
        }
        match name.as_str() {
            "image" => image = Some(data),
            "limit" | "offset" | "candidates" => {
                let text = String::from_utf8_lossy(&data).trim().to_string();
                let n: usize = text
                    .parse()
                    .map_err(|_| invalid(&name, format!("{text:?} is not a number")))?;
                fields.insert(name, n.into());
            }
            "query" | "kind" | "collection" | "language" | "from" | "to" | "mode" | "group" => {
                fields.insert(name, String::from_utf8_lossy(&data).into_owned().into());
            }
            other => return Err(bad(format!("unknown part {other:?}"))),
        }
    }
    let image = image.ok_or_else(|| bad("the `image` part is missing".into()))?;
    let body: SearchBody = serde_json::from_value(fields.into()).map_err(|e| bad(e.to_string()))?;
    let outcome = query::search(
        &state.store,
        &state.analyzers,
        body.into_input(Some(image))?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(linked(outcome)))
}

/// Results with the thumbnail URL of every moment that has one.
fn linked(mut outcome: SearchOutcome) -> SearchOutcome {
    let r = &mut outcome.response;
    let moments = r
        .hits
        .iter_mut()
        .flat_map(|h| h.moments.iter_mut())
        .chain(r.moments.iter_mut().map(|m| &mut m.moment));
    for m in moments {
        if m.has_thumbnail {
            m.thumbnail = Some(thumbnail_url(&m.segment_id));
        }
    }
    outcome
}
