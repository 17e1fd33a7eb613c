mod api;
mod clip_trained;
mod images;
mod models;
pub mod support;
