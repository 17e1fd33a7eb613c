//! The analysers: the models loaded from the model store, shared by ingest and search. A model
//! that is not installed leaves its feature off, with a notice saying how to turn it on.

use std::sync::Mutex;

use kairos_models::whisper::Whisper;
use kairos_models::{ClipEncoder, ModelKind, ModelStore, SentenceEmbedder};
use kairos_store::{Space, Store};

use crate::error::Result;

/// How the models run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnalyzerOptions {
    /// Whisper's decoder with q8_0 weights instead of f32 (the default: transcription 1.5× faster,
    /// 19.1 s against 28.7 s for 3 min of LibriVox, same word error rate; docs/benchmarks.md).
    pub whisper_q8: bool,
}

impl AnalyzerOptions {
    /// Defaults, with `KAIROS_WHISPER_DECODER=f32` selecting the f32 decoder.
    pub fn from_env() -> Self {
        let f32 =
            std::env::var("KAIROS_WHISPER_DECODER").is_ok_and(|v| v.eq_ignore_ascii_case("f32"));
        Self { whisper_q8: !f32 }
    }
}

/// The loaded models.
#[derive(Debug, Default)]
pub struct Analyzers {
    /// CLIP-family encoder: image embeddings and text → image search.
    pub clip: Option<ClipEncoder>,
    /// Sentence embedder: captions, transcripts, and semantic text search.
    pub sentence: Option<SentenceEmbedder>,
    /// Speech recogniser. Decoding keeps state (its key/value caches), so one file at a time;
    /// one transcription already keeps every core busy.
    pub whisper: Option<Mutex<Whisper>>,
    /// What is off because a model is missing, in words for people, by the kind that is missing.
    pub notices: Vec<(ModelKind, String)>,
    /// Query words embedded together with concurrent searches, and remembered.
    pub queries: crate::query_batch::QueryBatcher,
}

impl Analyzers {
    /// Loads the newest installed model of each kind. A missing model is a notice; a broken one
    /// is an error (it was installed, so it should work).
    pub fn load(models: &ModelStore) -> Result<Self> {
        Self::load_with(models, &AnalyzerOptions::from_env())
    }

    /// [`load`](Self::load) with explicit options.
    pub fn load_with(models: &ModelStore, options: &AnalyzerOptions) -> Result<Self> {
        let mut analyzers = Analyzers::default();
        match models.find(ModelKind::Clip)? {
            Some(m) => analyzers.clip = Some(ClipEncoder::load(&m.dir)?),
            None => analyzers
                .notices
                .push((ModelKind::Clip, models.missing_message(ModelKind::Clip))),
        }
        match models.find(ModelKind::Sentence)? {
            Some(m) => analyzers.sentence = Some(SentenceEmbedder::load(&m.dir)?),
            None => analyzers.notices.push((
                ModelKind::Sentence,
                models.missing_message(ModelKind::Sentence),
            )),
        }
        match models.find(ModelKind::Speech)? {
            Some(m) => {
                let w = Whisper::load(&m.dir, options.whisper_q8)?;
                analyzers.whisper = Some(Mutex::new(w));
            }
            None => analyzers
                .notices
                .push((ModelKind::Speech, models.missing_message(ModelKind::Speech))),
        }
        Ok(analyzers)
    }

    /// The notice for a missing model of `kind`, if it is missing.
    pub fn missing(&self, kind: ModelKind) -> Option<String> {
        self.notices
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, n)| n.clone())
    }

    /// Every notice, for start-up messages and the health endpoint.
    pub fn notice_texts(&self) -> Vec<&str> {
        self.notices.iter().map(|(_, n)| n.as_str()).collect()
    }

    /// Fails when the archive's vectors were made by models of another size than these.
    pub fn check_store(&self, store: &Store) -> Result<()> {
        if let Some(c) = &self.clip {
            store.check_dims(Space::Visual, c.dims())?;
        }
        if let Some(s) = &self.sentence {
            store.check_dims(Space::Text, s.dims())?;
        }
        Ok(())
    }
}
