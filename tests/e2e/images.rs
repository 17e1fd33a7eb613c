//! Images in, keyword and example-image search out, with no model installed.

use super::support::*;

/// Three captioned photos, a corrupt one and an empty one.
fn archive(root: &std::path::Path) {
    write(
        &root.join("sport/boxing final.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 1),
            "Heavyweight final",
            "Boxer lands an uppercut in the final round",
            "en",
            &["boxing", "final"],
        ),
    );
    write(
        &root.join("sport/pool.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 2),
            "Relay",
            "Swimmers dive into the pool at the start of the relay",
            "en",
            &["swimming"],
        ),
    );
    write(
        &root.join("ceremonie/seine.jpg"),
        &jpeg_with_xmp(
            &scene(320, 240, 3),
            "Cérémonie d'ouverture",
            "Les athlètes défilent sur la Seine en bateau",
            "fr",
            &["cérémonie", "Paris 2024"],
        ),
    );
    write(
        &root.join("broken/cut.jpg"),
        &jpeg(&scene(320, 240, 4))[..600],
    );
    write(&root.join("broken/empty.png"), b"");
    write(&root.join("notes.txt"), b"not media: skipped by the walk");
}

#[test]
fn ingest_reports_failures_per_file_and_keeps_going() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    archive(&media);
    let data = tmp.path().join("data");
    let out = kairos(&data, &["ingest", "--json", media.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "failures give exit code 2: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (summary["indexed"].as_u64(), summary["failed"].as_u64()),
        (Some(3), Some(2)),
        "{summary}"
    );
    let failures = summary["failures"].to_string();
    assert!(
        failures.contains("cut.jpg") && failures.contains("empty.png"),
        "{failures}"
    );
    assert!(
        failures.contains("empty"),
        "the empty file's error says so: {failures}"
    );
}

#[test]
fn keyword_search_finds_caption_words_with_snippet_and_stemming() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    archive(&media);
    let data = tmp.path().join("data");
    kairos(&data, &["ingest", media.to_str().unwrap()]);
    let r = search_json(&data, &["uppercuts"]);
    assert_eq!(hit_names(&r), ["boxing final.jpg"], "{r}");
    let snippet = r["hits"][0]["moments"][0]["snippet"].as_str().unwrap();
    assert!(snippet.contains("<b>uppercut</b>"), "{snippet}");
    assert!(r["hits"][0]["signals"]["keyword"].as_f64().unwrap() > 0.0);
    // French caption, searched without accents and by another form of the word.
    let r = search_json(&data, &["ceremonie bateaux"]);
    assert_eq!(hit_names(&r), ["seine.jpg"], "{r}");
    // Keywords and file names are searchable too.
    assert_eq!(hit_names(&search_json(&data, &["swimming"])), ["pool.jpg"]);
}

#[test]
fn filters_restrict_results() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    archive(&media);
    let data = tmp.path().join("data");
    kairos(
        &data,
        &["ingest", "--collection", "paris", media.to_str().unwrap()],
    );
    assert_eq!(
        hit_names(&search_json(&data, &["final", "--collection", "paris"])).len(),
        1
    );
    assert!(hit_names(&search_json(&data, &["final", "--collection", "london"])).is_empty());
    assert!(hit_names(&search_json(&data, &["final", "--kind", "video"])).is_empty());
}

#[test]
fn reingest_skips_what_is_indexed_even_under_another_name() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    archive(&media);
    let data = tmp.path().join("data");
    kairos(&data, &["ingest", media.to_str().unwrap()]);
    fs_err::copy(media.join("sport/pool.jpg"), media.join("copy of pool.jpg")).unwrap();
    let out = kairos(&data, &["ingest", "--json", media.to_str().unwrap()]);
    let summary: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(summary["indexed"], 0, "{summary}");
    assert_eq!(summary["skipped"], 4, "{summary}");
    // The failed files are tried again, and fail again.
    assert_eq!(summary["failed"], 2, "{summary}");
    assert_eq!(hit_names(&search_json(&data, &["relay"])), ["pool.jpg"]);
}

#[test]
fn example_image_finds_its_resized_reencoded_copy_without_any_model() {
    let tmp = tempfile::tempdir().unwrap();
    let media = tmp.path().join("media");
    archive(&media);
    let data = tmp.path().join("data");
    kairos(&data, &["ingest", media.to_str().unwrap()]);
    let copy = scene(320, 240, 2).resize_exact(200, 150, image::imageops::FilterType::Triangle);
    let mut png = std::io::Cursor::new(Vec::new());
    copy.write_to(&mut png, image::ImageFormat::Png).unwrap();
    let example = write(&tmp.path().join("example.png"), png.get_ref());
    let r = search_json(&data, &["--image", example.to_str().unwrap()]);
    assert_eq!(hit_names(&r)[0], "pool.jpg", "{r}");
    assert!(
        r["hits"][0]["signals"]["duplicate"].as_f64().unwrap() > 0.8,
        "{r}"
    );
    let notices = r["notices"].to_string();
    assert!(
        notices.contains("kairos models install"),
        "missing CLIP is announced: {notices}"
    );
}
