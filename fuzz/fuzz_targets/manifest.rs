//! Manifests (catalogue records as CSV or JSON): any bytes either parse or fail with an error
//! naming the manifest; a parsed manifest answers look-ups without panicking.
#![no_main]

use std::path::Path;

use kairos_indexer::manifest::Manifest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (json, bytes) = match data.split_first() {
        Some((flag, rest)) => (flag & 1 == 1, rest),
        None => return,
    };
    let name = Path::new("/fuzz/records.csv");
    match Manifest::parse(name, Path::new("/fuzz"), bytes, json) {
        Ok(m) => {
            for probe in ["/fuzz/a.jpg", "/elsewhere/a.jpg", "/fuzz/../x", ""] {
                let _ = m.record(Path::new(probe));
            }
        }
        Err(e) => assert!(e.to_string().contains("/fuzz/records.csv"), "{e}"),
    }
});
