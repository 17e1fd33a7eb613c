//! The end-to-end proof of natural-language → image search: a small CLIP-architecture model is
//! trained here on generated images of coloured shapes until text → image retrieval is right on
//! held-back images; then it is installed with `kairos models install`, the held-back images are
//! ingested under neutral names, and `kairos search "a red circle"` must rank a red circle first.

use candle_core::{DType, Device, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarBuilder};
use candle_transformers::models::clip::ClipModel;
use image::{DynamicImage, Rgb, RgbImage};
use kairos_models::clip::{
    CLIP_MEAN, CLIP_STD, HfClipConfig, HfTextConfig, HfVisionConfig, Preprocess, init_varmap,
    save_model_dir, word_level_tokenizer_json,
};

use super::support::*;

const COLORS: [(&str, [u8; 3]); 3] = [
    ("red", [220, 30, 30]),
    ("green", [30, 170, 40]),
    ("blue", [30, 60, 220]),
];
const SHAPES: [&str; 3] = ["circle", "square", "triangle"];

/// Deterministic pseudo-random numbers (xorshift), so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % 10_000) as f32 / 10_000.0
    }
}

/// One 64×64 image of a shape of a colour, at a random size and place, on a random light background.
fn draw(class: usize, rng: &mut Rng) -> DynamicImage {
    let (_, color) = COLORS[class / 3];
    let shape = SHAPES[class % 3];
    let bg = [
        225 + (rng.next() * 30.0) as u8,
        225 + (rng.next() * 30.0) as u8,
        225 + (rng.next() * 30.0) as u8,
    ];
    let r = 14.0 + rng.next() * 10.0;
    let cx = r + rng.next() * (64.0 - 2.0 * r);
    let cy = r + rng.next() * (64.0 - 2.0 * r);
    DynamicImage::ImageRgb8(RgbImage::from_fn(64, 64, |x, y| {
        let (dx, dy) = (x as f32 + 0.5 - cx, y as f32 + 0.5 - cy);
        let inside = match shape {
            "circle" => dx * dx + dy * dy <= r * r,
            "square" => dx.abs() <= r * 0.85 && dy.abs() <= r * 0.85,
            _ => dy <= r * 0.8 && dy >= -r && dx.abs() <= (dy + r) * 0.6,
        };
        Rgb(if inside { color } else { bg })
    }))
}

fn caption(class: usize) -> String {
    format!("a {} {}", COLORS[class / 3].0, SHAPES[class % 3])
}

fn config(vocab: usize) -> HfClipConfig {
    HfClipConfig {
        architectures: vec!["CLIPModel".into()],
        model_type: Some("clip".into()),
        projection_dim: 32,
        logit_scale_init_value: 2.6592,
        text_config: HfTextConfig {
            vocab_size: vocab,
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 1,
            num_attention_heads: 4,
            max_position_embeddings: 8,
            hidden_act: "quick_gelu".into(),
        },
        vision_config: HfVisionConfig {
            hidden_size: 64,
            intermediate_size: 128,
            num_hidden_layers: 2,
            num_attention_heads: 4,
            num_channels: 3,
            image_size: 32,
            patch_size: 8,
            hidden_act: "quick_gelu".into(),
        },
    }
}

/// Token ids as the word-level tokenizer makes them: start, words, end.
fn token_ids(tokenizer_json: &str, text: &str) -> Vec<u32> {
    let v: serde_json::Value = serde_json::from_str(tokenizer_json).unwrap();
    let vocab = &v["model"]["vocab"];
    let id = |w: &str| vocab[w].as_u64().unwrap() as u32;
    let mut ids = vec![id("<|startoftext|>")];
    ids.extend(text.split_whitespace().map(id));
    ids.push(id("<|endoftext|>"));
    ids
}

fn pixels(images: &[DynamicImage], pre: &Preprocess, device: &Device) -> Tensor {
    let flat: Vec<f32> = images.iter().flat_map(|i| pre.apply(i)).collect();
    Tensor::from_vec(flat, (images.len(), 3, pre.size, pre.size), device).unwrap()
}

/// Fraction of the nine captions whose most similar held-back image has the right class.
fn retrieval_accuracy(
    model: &ClipModel,
    ids: &Tensor,
    held: &[(usize, DynamicImage)],
    pre: &Preprocess,
    dev: &Device,
) -> f32 {
    let imgs: Vec<DynamicImage> = held.iter().map(|(_, i)| i.clone()).collect();
    let img_f = candle_transformers::models::clip::div_l2_norm(
        &model.get_image_features(&pixels(&imgs, pre, dev)).unwrap(),
    )
    .unwrap();
    let txt_f =
        candle_transformers::models::clip::div_l2_norm(&model.get_text_features(ids).unwrap())
            .unwrap();
    let sims = txt_f
        .matmul(&img_f.t().unwrap())
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    let right = sims
        .iter()
        .enumerate()
        .filter(|(class, row)| {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            held[best].0 == *class
        })
        .count();
    right as f32 / 9.0
}

#[test]
fn trained_clip_ranks_the_described_shape_first_in_kairos_search() {
    let words: Vec<&str> = ["a"]
        .into_iter()
        .chain(COLORS.iter().map(|c| c.0))
        .chain(SHAPES)
        .collect();
    let tokenizer = word_level_tokenizer_json(&words);
    let vocab = words.len() + 3;
    let config = config(vocab);
    let dev = Device::Cpu;
    let varmap = init_varmap(&config, &dev).unwrap();
    let model = ClipModel::new(
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
        &config.to_candle("test".as_ref()).unwrap(),
    )
    .unwrap();
    let pre = Preprocess {
        size: 32,
        mean: CLIP_MEAN,
        std: CLIP_STD,
    };
    let ids: Vec<u32> = (0..9)
        .flat_map(|c| token_ids(&tokenizer, &caption(c)))
        .collect();
    let ids = Tensor::from_vec(ids, (9, 5), &dev).unwrap();
    let labels = Tensor::arange(0u32, 9, &dev).unwrap();
    let mut rng = Rng(0x5eed_1234_abcd_9876);
    let held: Vec<(usize, DynamicImage)> =
        (0..27).map(|i| (i % 9, draw(i % 9, &mut rng))).collect();

    let mut opt = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: 2e-3,
            weight_decay: 0.0,
            ..Default::default()
        },
    )
    .unwrap();
    let mut accuracy = 0.0;
    let mut steps = 0;
    while steps < 3000 {
        // Four images of every class per step: the batch covers the variety quickly.
        for _ in 0..4 {
            let batch: Vec<DynamicImage> = (0..9).map(|c| draw(c, &mut rng)).collect();
            let (per_text, per_image) = model.forward(&pixels(&batch, &pre, &dev), &ids).unwrap();
            let loss = ((candle_nn::loss::cross_entropy(&per_image, &labels).unwrap()
                + candle_nn::loss::cross_entropy(&per_text, &labels).unwrap())
            .unwrap()
                / 2.0)
                .unwrap();
            opt.backward_step(&loss).unwrap();
            steps += 1;
        }
        if steps % 100 == 0 {
            accuracy = retrieval_accuracy(&model, &ids, &held, &pre, &dev);
            if accuracy == 1.0 {
                break;
            }
        }
    }
    assert_eq!(
        accuracy, 1.0,
        "training reached {accuracy} text→image accuracy in {steps} steps"
    );

    let tmp = tempfile::tempdir().unwrap();
    let model_dir = tmp.path().join("shapes-clip");
    save_model_dir(&model_dir, &config, &varmap, &tokenizer).unwrap();
    let data = tmp.path().join("data");
    kairos_ok(&data, &["models", "install", model_dir.to_str().unwrap()]);
    let media = tmp.path().join("media");
    let mut truth = std::collections::HashMap::new();
    for (i, (class, img)) in held.iter().enumerate() {
        // Neutral names: nothing but the pixels says what is in the picture.
        let name = format!("img{:02}.png", (i * 7) % 27);
        let mut png = std::io::Cursor::new(Vec::new());
        img.write_to(&mut png, image::ImageFormat::Png).unwrap();
        write(&media.join(&name), png.get_ref());
        truth.insert(name, *class);
    }
    kairos_ok(&data, &["ingest", media.to_str().unwrap()]);
    for class in 0..9 {
        let r = search_json(
            &data,
            &[&caption(class), "--mode", "visual", "--limit", "3"],
        );
        let names = hit_names(&r);
        assert_eq!(
            truth[&names[0]],
            class,
            "{:?} ranked {names:?} first: {r}",
            caption(class)
        );
    }

    // The same model finds a shot inside a video: four held-back pictures, two seconds each.
    let work = tmp.path().join("work");
    fs_err::create_dir_all(&work).unwrap();
    let order = [4usize, 0, 8, 2];
    let mut args: Vec<String> = vec!["-y".into(), "-v".into(), "error".into()];
    for (i, class) in order.iter().enumerate() {
        let png = work.join(format!("{i}.png"));
        held[*class].1.save(&png).unwrap();
        assert_eq!(held[*class].0, *class);
        args.extend(["-loop", "1", "-framerate", "25", "-t", "2", "-i"].map(String::from));
        args.push(png.to_str().unwrap().into());
    }
    let mut graph = String::new();
    for i in 0..order.len() {
        graph.push_str(&format!(
            "[{i}:v]scale=224:224:flags=neighbor,setsar=1[v{i}];"
        ));
    }
    for i in 0..order.len() {
        graph.push_str(&format!("[v{i}]"));
    }
    graph.push_str(&format!(
        "concat=n={}:v=1:a=0,format=yuv420p[v]",
        order.len()
    ));
    args.extend(["-filter_complex".into(), graph, "-map".into(), "[v]".into()]);
    args.extend(["-c:v", "libx264", "-preset", "veryfast", "-crf", "18"].map(String::from));
    let clips = tmp.path().join("clips");
    fs_err::create_dir_all(&clips).unwrap();
    let video = clips.join("shapes.mp4");
    args.push(video.to_str().unwrap().into());
    let out = std::process::Command::new("ffmpeg")
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    kairos_ok(&data, &["ingest", clips.to_str().unwrap()]);
    for (i, class) in order.iter().enumerate() {
        let r = search_json(
            &data,
            &[
                &caption(*class),
                "--mode",
                "visual",
                "--kind",
                "video",
                "--group",
                "moments",
                "--limit",
                "3",
            ],
        );
        let top = &r["moments"][0];
        assert_eq!(top["kind"], "shot", "{r}");
        assert_eq!(top["why"][0], "visual", "{r}");
        let start = top["start_ms"].as_i64().unwrap();
        assert!(
            (start - i as i64 * 2000).abs() <= 40,
            "{:?} found the shot at {start} ms, shown at {} ms: {r}",
            caption(*class),
            i * 2000
        );
    }
}
