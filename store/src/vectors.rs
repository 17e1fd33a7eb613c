//! The vector index: one qdrant-edge shard per vector space (`visual`, `text`), each created when
//! the first model of its kind produces vectors, one point per segment, filters run inside the search.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use qdrant_edge::external::ordered_float::OrderedFloat;
use qdrant_edge::external::uuid::Uuid;
use qdrant_edge::{
    Condition, CreateIndex, Distance, EdgeConfig, EdgeConfigBuilder, EdgeShard,
    EdgeVectorParamsBuilder, FieldCondition, FieldIndexOperations, Filter, Match, MatchValue,
    Memory, NamedQuery, Payload, PayloadFieldSchema, PayloadOps, PayloadSchemaType, PointId,
    PointInsertOperations, PointOperations, PointStruct, QuantizationConfig,
    QuantizationSearchParams, QueryEnum, Range, RetrieveRequest, ScalarQuantizationConfig,
    ScalarType, SearchParams, SearchRequest, SetPayloadOp, UpdateOperation, ValueVariants,
    VectorInternal, VectorStructInternal, Vectors, WithPayloadInterface, WithVector,
};
use serde_json::json;

use crate::catalog::Filters;
use crate::error::{Error, Result};
use crate::records::{AssetKind, SearchId, SegmentKind, canonical_uuid};

/// A vector space: which model's embeddings it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Space {
    /// CLIP image embeddings of keyframes and images (searched with CLIP text or image embeddings).
    Visual,
    /// Sentence embeddings of captions, transcripts and on-screen text.
    Text,
}

impl Space {
    /// The folder and vector name.
    pub fn as_str(self) -> &'static str {
        match self {
            Space::Visual => "visual",
            Space::Text => "text",
        }
    }

    /// Both spaces.
    pub const ALL: [Space; 2] = [Space::Visual, Space::Text];
}

/// One segment's vector with the payload that filters need.
#[derive(Debug, Clone)]
pub struct VectorPoint {
    pub segment_id: String,
    pub asset_id: String,
    pub asset_kind: AssetKind,
    pub segment_kind: SegmentKind,
    pub start_ms: i64,
    pub end_ms: i64,
    pub captured_at: Option<chrono::DateTime<chrono::Utc>>,
    pub collection: Option<String>,
    pub language: Option<String>,
    pub vector: Vec<f32>,
}

/// A nearest-neighbour hit; `score` is the cosine similarity.
#[derive(Debug, Clone, PartialEq)]
pub struct VectorHit {
    pub segment_id: SearchId,
    pub asset_id: SearchId,
    pub score: f32,
}

/// A vector index backend: the embedded qdrant-edge shards here, a Qdrant server at scale.
pub trait VectorIndex: Send + Sync + std::fmt::Debug {
    /// Inserts or replaces points of one space.
    fn upsert(&self, space: Space, points: Vec<VectorPoint>) -> Result<()>;
    /// Removes every point of an asset from every space.
    fn delete_asset(&self, asset_id: &str) -> Result<()>;
    /// Removes one segment's point from a space.
    fn delete_segment(&self, space: Space, segment_id: &str) -> Result<()>;
    /// Sets the collection of every point of an asset (after a user moved it), in every space.
    fn set_collection(&self, asset_id: &str, collection: Option<&str>) -> Result<()>;
    /// The stored vector of a segment, if it has one in `space`.
    fn vector(&self, space: Space, segment_id: &str) -> Result<Option<Vec<f32>>>;
    /// The `limit` nearest segments to `vector`, filtered (an HNSW walk keeps `limit`
    /// candidates, at least 40: asking for fewer is cheaper and finds the true nearest less
    /// often).
    fn search(
        &self,
        space: Space,
        vector: &[f32],
        filters: &Filters,
        limit: usize,
    ) -> Result<Vec<VectorHit>>;
    /// Makes every change durable.
    fn flush(&self) -> Result<()>;
    /// Every point of a space: asset id → its segment ids (for the consistency check).
    fn points_by_asset(&self, space: Space) -> Result<HashMap<String, Vec<String>>>;
    /// Builds the HNSW graphs (and their 8-bit copies of the vectors) of the points added since
    /// the last time, where there are enough of them to need one (qdrant's indexing threshold,
    /// 10 MB of vectors, about 6,500 sentence vectors); searches scan the others one by one.
    /// Searches go on meanwhile.
    fn optimize(&self) -> Result<()>;
    /// Points in a space.
    fn count(&self, space: Space) -> Result<usize>;
    /// Points of a space in an HNSW graph; a search compares the query with each of the others.
    fn indexed(&self, space: Space) -> Result<usize>;
    /// Dimensions of a space, once it exists.
    fn dims(&self, space: Space) -> Option<usize>;
    /// Where a space lives, for messages (a folder, or a server collection).
    fn location(&self, space: Space) -> PathBuf;

    /// Fails if a space exists with other dimensions than the model that writes to or queries it.
    fn check_dims(&self, space: Space, model_dims: usize) -> Result<()> {
        match self.dims(space) {
            Some(stored) if stored != model_dims => Err(Error::DimensionMismatch {
                space: space.as_str(),
                path: self.location(space),
                stored,
                model: model_dims,
            }),
            _ => Ok(()),
        }
    }
}

/// qdrant-edge shards under `<data>/vectors/<space>/`.
#[derive(Debug)]
pub struct EdgeVectors {
    root: PathBuf,
    shards: RwLock<HashMap<Space, Arc<EdgeShard>>>,
    /// The asset of each segment a search has met (or this process wrote), by UUID bits.
    owners: Owners,
}

/// Which asset a point belongs to, remembered so that searches need no payloads: reading and
/// parsing the JSON payloads of a search's 100 hits was a third of qdrant's share of a search
/// under load. A segment never changes asset, so an entry never goes stale in a way that
/// matters (a deleted point is no longer found). Only ids in the canonical form Kairos writes
/// are remembered; points of other ids have their payload read at every search. 32 bytes
/// and the map's overhead per point: about 8 MB for the bench archive's 200,000 points.
#[derive(Debug, Default)]
struct Owners(RwLock<foldhash::HashMap<u128, u128>>);

impl Owners {
    /// The (segment, asset) bits of each point whose asset is remembered.
    fn of(&self, ids: impl Iterator<Item = PointId>) -> Vec<Option<(u128, u128)>> {
        let map = self.0.read().unwrap_or_else(|e| e.into_inner());
        ids.map(|id| match id {
            PointId::Uuid(u) => map.get(&u.as_u128()).map(|a| (u.as_u128(), *a)),
            PointId::NumId(_) => None,
        })
        .collect()
    }

    /// Remembers that each segment is of its asset, where both are canonical UUIDs.
    fn note<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        for (segment, asset) in pairs {
            if let (Some(s), Some(a)) = (canonical_uuid(segment), canonical_uuid(asset)) {
                map.insert(s, a);
            }
        }
    }
}

impl EdgeVectors {
    /// The `limit` points of `space` nearest to `vector`, filtered: by the HNSW walk
    /// ([`VectorIndex::search`]), or `exact`ly, every point compared in f32.
    fn nearest(
        &self,
        space: Space,
        vector: &[f32],
        filters: &Filters,
        limit: usize,
        exact: bool,
    ) -> Result<Vec<VectorHit>> {
        let Some(shard) = self.shard(space) else {
            return Ok(Vec::new());
        };
        self.check_dims(space, vector.len())?;
        let params = if exact {
            SearchParams {
                exact: true,
                quantization: Some(QuantizationSearchParams {
                    ignore: true,
                    rescore: None,
                    oversampling: None,
                }),
                ..Default::default()
            }
        } else {
            // The walk compares the 8-bit copies; qdrant returns their approximate scores
            // unless told to rescore its hits with the f32 originals. It keeps `limit`
            // candidates, at least `MIN_WALK` (its `ef`), so that its breadth follows the
            // search's candidates; the shard's own `ef` (100) would be a floor under them.
            SearchParams {
                hnsw_ef: Some(limit.max(MIN_WALK)),
                quantization: Some(QuantizationSearchParams {
                    ignore: false,
                    rescore: Some(true),
                    oversampling: None,
                }),
                ..Default::default()
            }
        };
        let points = shard
            .search(SearchRequest {
                query: QueryEnum::Nearest(NamedQuery {
                    query: VectorInternal::Dense(vector.to_vec()),
                    using: Some(space.as_str().to_string()),
                }),
                filter: to_filter(filters),
                params: Some(params),
                limit,
                offset: 0,
                with_payload: Some(WithPayloadInterface::Bool(false)),
                with_vector: None,
                score_threshold: None,
            })
            .map_err(self.err(space))?;
        // The asset of each hit: remembered, or read from the payloads of those not yet met.
        let known = self.owners.of(points.iter().map(|p| p.id));
        let unknown: Vec<PointId> = points
            .iter()
            .zip(&known)
            .filter(|(_, k)| k.is_none())
            .map(|(p, _)| p.id)
            .collect();
        let mut read: HashMap<PointId, (String, String)> = HashMap::new();
        if !unknown.is_empty() {
            let records = shard
                .retrieve(RetrieveRequest {
                    point_ids: unknown,
                    with_payload: Some(WithPayloadInterface::Bool(true)),
                    with_vector: Some(WithVector::Bool(false)),
                })
                .map_err(self.err(space))?;
            for r in records {
                read.insert(r.id, self.payload_ids(space, &r.id, r.payload.as_ref())?);
            }
            self.owners
                .note(read.values().map(|(s, a)| (s.as_str(), a.as_str())));
        }
        let mut hits = Vec::with_capacity(points.len());
        for (p, known) in points.into_iter().zip(known) {
            let (segment_id, asset_id) = match (read.remove(&p.id), known) {
                (Some((segment, asset)), _) => (SearchId::new(&segment), SearchId::new(&asset)),
                (None, Some((segment, asset))) => (SearchId::Uuid(segment), SearchId::Uuid(asset)),
                // Deleted between the search and the read of its payload.
                (None, None) => continue,
            };
            hits.push(VectorHit {
                segment_id,
                asset_id,
                score: p.score,
            });
        }
        Ok(hits)
    }

    /// [`VectorIndex::search`] without the HNSW walk: every point compared in f32. What the walk
    /// should find, for measuring how much of it it does (`kairos bench vectors`); a full scan.
    pub fn search_exact(
        &self,
        space: Space,
        vector: &[f32],
        filters: &Filters,
        limit: usize,
    ) -> Result<Vec<VectorHit>> {
        self.nearest(space, vector, filters, limit, true)
    }

    /// Opens the shards that exist under `root`.
    pub fn open(root: &Path) -> Result<Self> {
        fs_err::create_dir_all(root)?;
        let mut shards = HashMap::new();
        for space in Space::ALL {
            let dir = root.join(space.as_str());
            if dir.join("edge_config.json").is_file() {
                let shard =
                    EdgeShard::load(&dir, saved_config(&dir)).map_err(|e| Error::VectorIndex {
                        path: dir.clone(),
                        message: e.to_string(),
                    })?;
                shards.insert(space, Arc::new(shard));
            }
        }
        Ok(Self {
            root: root.to_path_buf(),
            shards: RwLock::new(shards),
            owners: Owners::default(),
        })
    }

    fn path(&self, space: Space) -> PathBuf {
        self.root.join(space.as_str())
    }

    fn err(&self, space: Space) -> impl Fn(qdrant_edge::OperationError) -> Error + '_ {
        move |e| Error::VectorIndex {
            path: self.path(space),
            message: e.to_string(),
        }
    }

    /// The segment and asset ids a point's payload holds.
    fn payload_ids(
        &self,
        space: Space,
        id: &PointId,
        payload: Option<&Payload>,
    ) -> Result<(String, String)> {
        let field = |name: &str| {
            payload
                .and_then(|pl| pl.0.get(name))
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| Error::DataCorruption {
                    path: self.path(space),
                    message: format!("point {id:?} has no {name} in its payload"),
                })
        };
        Ok((field("segment_id")?, field("asset_id")?))
    }

    fn shard(&self, space: Space) -> Option<Arc<EdgeShard>> {
        self.shards
            .read()
            .expect("vector shard lock")
            .get(&space)
            .cloned()
    }

    fn shard_or_create(&self, space: Space, dims: usize) -> Result<Arc<EdgeShard>> {
        if let Some(shard) = self.shard(space) {
            self.check_dims(space, dims)?;
            return Ok(shard);
        }
        let mut shards = self.shards.write().expect("vector shard lock");
        if let Some(shard) = shards.get(&space) {
            return Ok(shard.clone());
        }
        let dir = self.path(space);
        fs_err::create_dir_all(&dir)?;
        let config = EdgeConfigBuilder::new()
            .vector(
                space.as_str(),
                EdgeVectorParamsBuilder::new(dims, Distance::Cosine)
                    .quantization_config(quantization())
                    .build(),
            )
            .max_search_threads(SEARCH_THREADS)
            .build();
        let shard = EdgeShard::new(&dir, config).map_err(self.err(space))?;
        for (field, schema) in [
            ("asset_id", PayloadSchemaType::Keyword),
            ("kind", PayloadSchemaType::Keyword),
            ("segment_kind", PayloadSchemaType::Keyword),
            ("collection", PayloadSchemaType::Keyword),
            ("language", PayloadSchemaType::Keyword),
            ("captured_ts", PayloadSchemaType::Integer),
        ] {
            shard
                .update(UpdateOperation::FieldIndexOperation(
                    FieldIndexOperations::CreateIndex(CreateIndex {
                        field_name: field.parse().expect("static field name"),
                        field_schema: Some(PayloadFieldSchema::FieldType(schema)),
                    }),
                ))
                .map_err(self.err(space))?;
        }
        let shard = Arc::new(shard);
        shards.insert(space, shard.clone());
        Ok(shard)
    }
}

/// How a space's vectors are kept for the HNSW walk, beside their f32 originals: 8 bits a
/// value, pinned in RAM (what shards written before qdrant-edge 0.9.0 asked for as
/// `always_ram`). A search compares a quarter of the bytes (at 100,000 sentence vectors it spent
/// more time reading f32 vectors than anything else in qdrant), then rescores its hits with the
/// originals, so scores stay exact. Built when a segment is indexed ([`VectorIndex::optimize`]).
fn quantization() -> QuantizationConfig {
    // The struct has no constructor, and naming its deprecated `always_ram` is unavoidable.
    #[allow(deprecated)]
    let scalar = ScalarQuantizationConfig {
        r#type: ScalarType::Int8,
        quantile: Some(0.99),
        always_ram: None,
        memory: Some(Memory::Pinned),
    };
    scalar.into()
}

/// The fewest candidates an HNSW walk keeps (qdrant's `ef`), whatever the number of hits asked:
/// below it the walk misses the true nearest fast (at 10, the 8,000-vector test of this module
/// found 188 of the true 200).
const MIN_WALK: usize = 40;

/// Threads a shard searches its segments on. One: the search runs on the thread that asks
/// (Kairos's turns, one per core), as with qdrant-edge 0.7.2. 0.9.0's default is a pool of four
/// threads a core, handed every search.
const SEARCH_THREADS: usize = 1;

/// The saved configuration of the shard in `dir`, with what Kairos asks of every shard where
/// the shard was written without it: [`quantization`] for every vector (their next
/// optimisation builds it), and [`SEARCH_THREADS`] (no shard before qdrant-edge 0.9.0 has the
/// key). `None` leaves the saved configuration to `EdgeShard::load`, which reports an
/// unreadable one.
fn saved_config(dir: &Path) -> Option<EdgeConfig> {
    let Some(Ok(mut config)) = EdgeConfig::load(dir) else {
        return None;
    };
    for params in config.vectors.values_mut() {
        params.quantization_config.get_or_insert_with(quantization);
    }
    config.max_search_threads = Some(SEARCH_THREADS);
    Some(config)
}

fn point_id(segment_id: &str) -> Result<PointId> {
    Uuid::parse_str(segment_id)
        .map(PointId::Uuid)
        .map_err(|e| Error::InvalidInput {
            field: "segment_id",
            message: format!("{segment_id:?}: {e}"),
        })
}

fn keyword(field: &str, value: &str) -> Condition {
    Condition::Field(FieldCondition::new_match(
        field.parse().expect("static field name"),
        Match::Value(MatchValue {
            value: ValueVariants::String(value.to_string()),
        }),
    ))
}

fn to_filter(filters: &Filters) -> Option<Filter> {
    let mut must = Vec::new();
    if let Some(k) = filters.kind {
        must.push(keyword("kind", k.as_str()));
    }
    if let Some(c) = &filters.collection {
        must.push(keyword("collection", c));
    }
    if let Some(l) = &filters.language {
        must.push(keyword("language", l));
    }
    if filters.captured_after.is_some() || filters.captured_before.is_some() {
        must.push(Condition::Field(FieldCondition::new_range(
            "captured_ts".parse().expect("static field name"),
            Range {
                lt: None,
                gt: None,
                gte: filters
                    .captured_after
                    .map(|t| OrderedFloat(t.timestamp() as f64)),
                lte: filters
                    .captured_before
                    .map(|t| OrderedFloat(t.timestamp() as f64)),
            },
        )));
    }
    (!must.is_empty()).then(|| Filter {
        should: None,
        min_should: None,
        must: Some(must),
        must_not: None,
    })
}

impl VectorIndex for EdgeVectors {
    fn upsert(&self, space: Space, points: Vec<VectorPoint>) -> Result<()> {
        let Some(first) = points.first() else {
            return Ok(());
        };
        let dims = first.vector.len();
        if let Some(bad) = points.iter().find(|p| p.vector.len() != dims) {
            return Err(Error::InvalidInput {
                field: "vector",
                message: format!(
                    "segment {} has {} dimensions, expected {dims}",
                    bad.segment_id,
                    bad.vector.len()
                ),
            });
        }
        let shard = self.shard_or_create(space, dims)?;
        self.owners.note(
            points
                .iter()
                .map(|p| (p.segment_id.as_str(), p.asset_id.as_str())),
        );
        let mut structs = Vec::with_capacity(points.len());
        for p in points {
            let payload = json!({
                "segment_id": p.segment_id,
                "asset_id": p.asset_id,
                "kind": p.asset_kind.as_str(),
                "segment_kind": p.segment_kind.as_str(),
                "start_ms": p.start_ms,
                "end_ms": p.end_ms,
                "captured_ts": p.captured_at.map(|t| t.timestamp()),
                "collection": p.collection,
                "language": p.language,
            });
            let vectors = Vectors::new_named([(space.as_str(), p.vector)]);
            structs.push(PointStruct::new(point_id(&p.segment_id)?, vectors, payload).into());
        }
        shard
            .update(UpdateOperation::PointOperation(
                PointOperations::UpsertPoints(PointInsertOperations::PointsList(structs)),
            ))
            .map_err(self.err(space))
    }

    fn delete_asset(&self, asset_id: &str) -> Result<()> {
        for space in Space::ALL {
            if let Some(shard) = self.shard(space) {
                let filter = Filter {
                    should: None,
                    min_should: None,
                    must: Some(vec![keyword("asset_id", asset_id)]),
                    must_not: None,
                };
                shard
                    .update(UpdateOperation::PointOperation(
                        PointOperations::DeletePointsByFilter(filter),
                    ))
                    .map_err(self.err(space))?;
            }
        }
        Ok(())
    }

    fn delete_segment(&self, space: Space, segment_id: &str) -> Result<()> {
        let Some(shard) = self.shard(space) else {
            return Ok(());
        };
        shard
            .update(UpdateOperation::PointOperation(
                PointOperations::DeletePoints {
                    ids: vec![point_id(segment_id)?],
                },
            ))
            .map_err(self.err(space))
    }

    fn set_collection(&self, asset_id: &str, collection: Option<&str>) -> Result<()> {
        for space in Space::ALL {
            if let Some(shard) = self.shard(space) {
                let payload = json!({ "collection": collection });
                let serde_json::Value::Object(map) = payload else {
                    unreachable!("a JSON object literal")
                };
                shard
                    .update(UpdateOperation::PayloadOperation(PayloadOps::SetPayload(
                        SetPayloadOp {
                            payload: Payload(map),
                            points: None,
                            filter: Some(Filter {
                                should: None,
                                min_should: None,
                                must: Some(vec![keyword("asset_id", asset_id)]),
                                must_not: None,
                            }),
                            key: None,
                        },
                    )))
                    .map_err(self.err(space))?;
            }
        }
        Ok(())
    }

    fn vector(&self, space: Space, segment_id: &str) -> Result<Option<Vec<f32>>> {
        let Some(shard) = self.shard(space) else {
            return Ok(None);
        };
        let records = shard
            .retrieve(RetrieveRequest {
                point_ids: vec![point_id(segment_id)?],
                with_payload: Some(WithPayloadInterface::Bool(false)),
                with_vector: Some(WithVector::Bool(true)),
            })
            .map_err(self.err(space))?;
        Ok(records.into_iter().next().and_then(|r| match r.vector? {
            VectorStructInternal::Named(mut named) => match named.remove(space.as_str())? {
                VectorInternal::Dense(v) => Some(v),
                _ => None,
            },
            VectorStructInternal::Single(v) => Some(v),
            VectorStructInternal::MultiDense(_) => None,
        }))
    }

    fn search(
        &self,
        space: Space,
        vector: &[f32],
        filters: &Filters,
        limit: usize,
    ) -> Result<Vec<VectorHit>> {
        self.nearest(space, vector, filters, limit, false)
    }

    fn points_by_asset(&self, space: Space) -> Result<HashMap<String, Vec<String>>> {
        let mut out: HashMap<String, Vec<String>> = HashMap::new();
        let Some(shard) = self.shard(space) else {
            return Ok(out);
        };
        let mut offset = None;
        loop {
            let (records, next) = shard
                .scroll(qdrant_edge::ScrollRequest {
                    offset,
                    limit: Some(10_000),
                    filter: None,
                    with_payload: Some(WithPayloadInterface::Bool(true)),
                    with_vector: WithVector::Bool(false),
                    order_by: None,
                })
                .map_err(self.err(space))?;
            for r in records {
                let (segment, asset) = self.payload_ids(space, &r.id, r.payload.as_ref())?;
                out.entry(asset).or_default().push(segment);
            }
            match next {
                Some(n) => offset = Some(n),
                None => break,
            }
        }
        Ok(out)
    }

    fn flush(&self) -> Result<()> {
        for space in Space::ALL {
            if let Some(shard) = self.shard(space) {
                shard.flush().map_err(self.err(space))?;
            }
        }
        Ok(())
    }

    fn optimize(&self) -> Result<()> {
        for space in Space::ALL {
            if let Some(shard) = self.shard(space) {
                shard.optimize().map_err(self.err(space))?;
            }
        }
        Ok(())
    }

    fn count(&self, space: Space) -> Result<usize> {
        match self.shard(space) {
            Some(shard) => shard
                .count(qdrant_edge::CountRequest {
                    filter: None,
                    exact: true,
                })
                .map_err(self.err(space)),
            None => Ok(0),
        }
    }

    fn indexed(&self, space: Space) -> Result<usize> {
        match self.shard(space) {
            Some(s) => Ok(s.info().map_err(self.err(space))?.indexed_vectors_count),
            None => Ok(0),
        }
    }

    fn location(&self, space: Space) -> PathBuf {
        self.path(space)
    }

    fn dims(&self, space: Space) -> Option<usize> {
        self.shard(space)
            .and_then(|s| s.config().vectors.get(space.as_str()).map(|v| v.size))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(asset: &str, collection: &str, v: Vec<f32>) -> VectorPoint {
        VectorPoint {
            segment_id: uuid::Uuid::now_v7().to_string(),
            asset_id: asset.into(),
            asset_kind: AssetKind::Image,
            segment_kind: SegmentKind::Image,
            start_ms: 0,
            end_ms: 0,
            captured_at: None,
            collection: Some(collection.into()),
            language: None,
            vector: v,
        }
    }

    #[test]
    fn nearest_respects_filters_and_deletes_and_survives_reopen() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let v = EdgeVectors::open(tmp.path()).unwrap();
            v.upsert(
                Space::Visual,
                vec![
                    point("a", "x", vec![1.0, 0.0, 0.0]),
                    point("b", "y", vec![0.9, 0.1, 0.0]),
                    point("c", "x", vec![0.0, 1.0, 0.0]),
                ],
            )
            .unwrap();
            let hits = v
                .search(Space::Visual, &[1.0, 0.0, 0.0], &Filters::default(), 2)
                .unwrap();
            assert_eq!(
                hits.iter().map(|h| h.asset_id.to_id()).collect::<Vec<_>>(),
                ["a", "b"]
            );
            assert!((hits[0].score - 1.0).abs() < 1e-4);
            let only_y = Filters {
                collection: Some("y".into()),
                ..Default::default()
            };
            assert_eq!(
                v.search(Space::Visual, &[1.0, 0.0, 0.0], &only_y, 5)
                    .unwrap()[0]
                    .asset_id,
                "b"
            );
            v.delete_asset("a").unwrap();
            v.flush().unwrap();
            assert!(
                v.search(Space::Text, &[1.0, 0.0, 0.0], &Filters::default(), 5)
                    .unwrap()
                    .is_empty()
            );
        }
        let v = EdgeVectors::open(tmp.path()).unwrap();
        assert_eq!(v.count(Space::Visual).unwrap(), 2);
        assert_eq!(v.dims(Space::Visual), Some(3));
        let err = v.check_dims(Space::Visual, 512).unwrap_err().to_string();
        assert!(err.contains("3 dimensions") && err.contains("512"), "{err}");
    }

    /// A flush drops the write-ahead log's entries the segments hold (it kept every update
    /// before, as large as the vectors themselves), and updates after a reopen still win over
    /// what was stored before it: the log keeps numbering them from where it was.
    #[test]
    fn flushes_cut_the_write_ahead_log_and_later_updates_still_apply() {
        const DIMS: usize = 2048;
        let tmp = tempfile::tempdir().unwrap();
        let wal = tmp.path().join("visual/wal");
        let axis = |i: usize| {
            let mut v = vec![0.0; DIMS];
            v[i % DIMS] = 1.0;
            v
        };
        let closed = || {
            fs_err::read_dir(&wal)
                .unwrap()
                .filter(|f| {
                    let name = f.as_ref().unwrap().file_name();
                    name.to_string_lossy().starts_with("closed-")
                })
                .count()
        };
        let moved = point("moved", "x", axis(0));
        {
            let v = EdgeVectors::open(tmp.path()).unwrap();
            v.upsert(Space::Visual, vec![moved.clone()]).unwrap();
            // 12,000 vectors of 8 KiB: about three of the log's 32 MiB files.
            for batch in 0..12 {
                let points = (0..1_000)
                    .map(|i| point(&format!("f{batch}-{i}"), "x", axis(1 + i)))
                    .collect();
                v.upsert(Space::Visual, points).unwrap();
            }
            assert!(
                closed() >= 2,
                "{} closed log files before the flush",
                closed()
            );
            v.flush().unwrap();
            assert!(
                closed() <= 1,
                "{} closed log files after the flush",
                closed()
            );
        }
        {
            let v = EdgeVectors::open(tmp.path()).unwrap();
            assert_eq!(v.count(Space::Visual).unwrap(), 12_001);
            let again = VectorPoint {
                vector: axis(DIMS - 1),
                ..moved.clone()
            };
            v.upsert(Space::Visual, vec![again]).unwrap();
            v.flush().unwrap();
        }
        let v = EdgeVectors::open(tmp.path()).unwrap();
        let hits = v
            .search(Space::Visual, &axis(DIMS - 1), &Filters::default(), 1)
            .unwrap();
        assert_eq!(hits[0].segment_id, moved.segment_id);
        assert!((hits[0].score - 1.0).abs() < 1e-4, "{}", hits[0].score);
        assert_eq!(v.count(Space::Visual).unwrap(), 12_001);
    }

    /// A process killed between an update and the next flush loses nothing the update wrote:
    /// the next open replays what the write-ahead log holds beyond what the segments persisted
    /// (qdrant-edge 0.9.0; 0.7.2 never read its log back). The writer is this test run again
    /// in a child process, killed once it has written.
    #[test]
    fn updates_not_flushed_before_a_kill_are_replayed_on_open() {
        const WRITER: &str = "KAIROS_TEST_UNFLUSHED_WRITER";
        let unflushed = [0.0, 1.0, 0.0];
        if let Some(dir) = std::env::var_os(WRITER) {
            let v = EdgeVectors::open(Path::new(&dir)).unwrap();
            v.upsert(Space::Visual, vec![point("kept", "x", vec![1.0, 0.0, 0.0])])
                .unwrap();
            v.flush().unwrap();
            v.upsert(
                Space::Visual,
                vec![point("unflushed", "x", unflushed.to_vec())],
            )
            .unwrap();
            println!("written");
            std::thread::sleep(std::time::Duration::from_secs(60));
            unreachable!("the writer is killed before this");
        }
        let tmp = tempfile::tempdir().unwrap();
        let mut writer = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "vectors::tests::updates_not_flushed_before_a_kill_are_replayed_on_open",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(WRITER, tmp.path())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(writer.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("written") {
            line.clear();
            let read = std::io::BufRead::read_line(&mut out, &mut line).unwrap();
            assert!(read > 0, "the writer ended without writing");
        }
        writer.kill().unwrap();
        writer.wait().unwrap();
        let v = EdgeVectors::open(tmp.path()).unwrap();
        assert_eq!(v.count(Space::Visual).unwrap(), 2);
        let hits = v
            .search(Space::Visual, &unflushed, &Filters::default(), 1)
            .unwrap();
        assert_eq!(hits[0].asset_id, "unflushed");
    }

    /// Hits name their segment and asset whether the asset is remembered (written by this
    /// process, or met by an earlier search) or read from the payload (after a reopen, or an
    /// id not in the canonical form).
    #[test]
    fn hits_name_their_segment_and_asset_remembered_or_not() {
        let tmp = tempfile::tempdir().unwrap();
        let asset = uuid::Uuid::now_v7().to_string();
        let upper = uuid::Uuid::now_v7().to_string().to_uppercase();
        let points = vec![
            point(&asset, "x", vec![1.0, 0.0, 0.0]),
            point("plain-id", "x", vec![0.9, 0.1, 0.0]),
            point(&upper, "x", vec![0.8, 0.2, 0.0]),
        ];
        let want: Vec<(String, String)> = points
            .iter()
            .map(|p| (p.segment_id.clone(), p.asset_id.clone()))
            .collect();
        let found = |v: &EdgeVectors| -> Vec<(String, String)> {
            v.search(Space::Visual, &[1.0, 0.0, 0.0], &Filters::default(), 3)
                .unwrap()
                .into_iter()
                .map(|h| (h.segment_id.to_id(), h.asset_id.to_id()))
                .collect()
        };
        {
            let v = EdgeVectors::open(tmp.path()).unwrap();
            v.upsert(Space::Visual, points).unwrap();
            assert_eq!(v.owners.0.read().unwrap().len(), 1, "only canonical ids");
            assert_eq!(found(&v), want);
            v.flush().unwrap();
        }
        let v = EdgeVectors::open(tmp.path()).unwrap();
        assert_eq!(v.owners.0.read().unwrap().len(), 0);
        // From the payloads, then from what that search remembered.
        assert_eq!(found(&v), want);
        assert_eq!(v.owners.0.read().unwrap().len(), 1);
        assert_eq!(found(&v), want);
    }

    /// A shard written before quantisation gets it: its next optimisation builds the HNSW graph
    /// over 8-bit copies, and searches find the exact nearest points with their exact scores
    /// (the exact search finds exactly what a brute force does).
    #[test]
    fn shards_without_quantization_get_it_when_indexed() {
        let tmp = tempfile::tempdir().unwrap();
        let dims = 384;
        let dir = tmp.path().join(Space::Text.as_str());
        fs_err::create_dir_all(&dir).unwrap();
        let before = EdgeConfigBuilder::new()
            .vector(
                Space::Text.as_str(),
                EdgeVectorParamsBuilder::new(dims, Distance::Cosine).build(),
            )
            .build();
        drop(EdgeShard::new(&dir, before).unwrap());
        // Above qdrant's 10 MB indexing threshold: 8,000 points of 384 f32. Like embeddings,
        // they vary along a few directions (random vectors in 384 dimensions defeat any graph
        // search, quantised or not).
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut random = move |n: usize| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % 2001) as f32 / 1000.0 - 1.0
                })
                .collect()
        };
        let directions: Vec<Vec<f32>> = (0..12).map(|_| random(dims)).collect();
        let mut unit = || {
            let (weights, noise) = (random(directions.len()), random(dims));
            let v: Vec<f32> = (0..dims)
                .map(|i| {
                    directions
                        .iter()
                        .zip(&weights)
                        .map(|(d, w)| d[i] * w)
                        .sum::<f32>()
                        + 0.2 * noise[i]
                })
                .collect();
            let n = v.iter().map(|a| a * a).sum::<f32>().sqrt();
            v.into_iter().map(|a| a / n).collect::<Vec<f32>>()
        };
        let points: Vec<VectorPoint> = (0..8_000)
            .map(|i| point(&format!("a{i}"), "x", unit()))
            .collect();
        let queries: Vec<Vec<f32>> = (0..20).map(|_| unit()).collect();
        let v = EdgeVectors::open(tmp.path()).unwrap();
        v.upsert(Space::Text, points.clone()).unwrap();
        assert_eq!(v.indexed(Space::Text).unwrap(), 0);
        v.optimize().unwrap();
        assert_eq!(v.indexed(Space::Text).unwrap(), 8_000);
        let quantized = fs_err::read_dir(dir.join("segments")).unwrap().any(|s| {
            s.unwrap()
                .path()
                .join("vector_storage-text/quantized.data")
                .is_file()
        });
        assert!(quantized, "no 8-bit copy was built");

        let (mut found, mut wanted) = (0, 0);
        for q in &queries {
            let mut exact: Vec<(f32, &str)> = points
                .iter()
                .map(|p| {
                    let cos = p.vector.iter().zip(q).map(|(a, b)| a * b).sum::<f32>();
                    (cos, p.asset_id.as_str())
                })
                .collect();
            exact.sort_by(|a, b| b.0.total_cmp(&a.0));
            let scanned = v
                .search_exact(Space::Text, q, &Filters::default(), 10)
                .unwrap();
            let scanned: Vec<String> = scanned.iter().map(|h| h.asset_id.to_string()).collect();
            let truth: Vec<&str> = exact[..10].iter().map(|(_, a)| *a).collect();
            assert_eq!(scanned, truth, "the exact search is not the brute force's");
            let hits = v.search(Space::Text, q, &Filters::default(), 10).unwrap();
            assert_eq!(hits.len(), 10);
            for h in &hits {
                let (cos, _) = exact.iter().find(|(_, a)| h.asset_id == *a).unwrap();
                assert!((h.score - cos).abs() < 1e-4, "{} against {cos}", h.score);
            }
            wanted += 10;
            found += hits
                .iter()
                .filter(|h| exact[..10].iter().any(|(_, a)| h.asset_id == *a))
                .count();
        }
        assert!(found * 20 >= wanted * 19, "recall {found}/{wanted}");
    }
}
