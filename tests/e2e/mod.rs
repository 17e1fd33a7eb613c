mod api;
mod api_writes;
mod browser;
mod clip_trained;
mod images;
mod models;
mod speech;
pub mod support;
mod video;
