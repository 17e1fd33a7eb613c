//! End-to-end tests: they drive the built `kairos` binary and its HTTP API on media generated
//! here. One test binary (Meilisearch's habit) keeps link time down with candle in the tree.

mod e2e;
