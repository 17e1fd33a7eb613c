//! The analysers: the models loaded from the model store, shared by ingest and search. A model
//! that is not installed leaves its feature off, with a notice saying how to turn it on.

use kairos_models::{ClipEncoder, ModelKind, ModelStore, SentenceEmbedder};
use kairos_store::{Space, Store};

use crate::error::Result;

/// The loaded models.
#[derive(Debug, Default)]
pub struct Analyzers {
    /// CLIP-family encoder: image embeddings and text → image search.
    pub clip: Option<ClipEncoder>,
    /// Sentence embedder: captions, transcripts, and semantic text search.
    pub sentence: Option<SentenceEmbedder>,
    /// What is off because a model is missing, in words for people, by the kind that is missing.
    pub notices: Vec<(ModelKind, String)>,
}

impl Analyzers {
    /// Loads the newest installed model of each kind. A missing model is a notice; a broken one
    /// is an error (it was installed, so it should work).
    pub fn load(models: &ModelStore) -> Result<Self> {
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
