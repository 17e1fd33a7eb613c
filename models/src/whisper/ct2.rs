//! Reading faster-whisper's CTranslate2 `model.bin` and renaming its tensors to the Hugging Face
//! layout (MODELS.md has the format and the mapping), so that the one Whisper loader serves both.

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};

use crate::error::{CandleContext, Error, Result};

/// One tensor as stored in the file.
#[derive(Debug)]
struct RawTensor {
    dims: Vec<usize>,
    dtype: u8,
    data: Vec<u8>,
}

struct Reader<'a> {
    path: &'a Path,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn fail(&self, what: &str) -> Error {
        Error::Config {
            path: self.path.to_path_buf(),
            message: format!(
                "not a CTranslate2 Whisper file: {what} at byte {}",
                self.pos
            ),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| self.fail("truncated"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A string: u16 length including the NUL, then the bytes.
    fn string(&mut self) -> Result<String> {
        let n = self.u16()? as usize;
        let b = self.take(n)?;
        let b = b.strip_suffix(&[0]).unwrap_or(b);
        String::from_utf8(b.to_vec()).map_err(|_| self.fail("a name that is not UTF-8"))
    }
}

fn read(path: &Path, bytes: &[u8]) -> Result<HashMap<String, RawTensor>> {
    let mut r = Reader {
        path,
        bytes,
        pos: 0,
    };
    let version = r.u32()?;
    if version != 6 {
        return Err(r.fail(&format!("binary version {version} (expected 6)")));
    }
    let spec = r.string()?;
    if spec != "WhisperSpec" {
        return Err(r.fail(&format!("spec {spec:?} (expected WhisperSpec)")));
    }
    let _revision = r.u32()?;
    let count = r.u32()? as usize;
    let mut tensors = HashMap::with_capacity(count);
    for _ in 0..count {
        let name = r.string()?;
        let rank = r.u8()? as usize;
        let dims = (0..rank)
            .map(|_| r.u32().map(|d| d as usize))
            .collect::<Result<Vec<_>>>()?;
        let dtype = r.u8()?;
        let n = r.u32()? as usize;
        let data = r.take(n)?.to_vec();
        tensors.insert(name, RawTensor { dims, dtype, data });
    }
    Ok(tensors)
}

fn to_tensor(path: &Path, name: &str, raw: &RawTensor) -> Result<Tensor> {
    let (dtype, size) = match raw.dtype {
        0 => (DType::F32, 4),
        4 => (DType::F16, 2),
        other => {
            return Err(Error::Config {
                path: path.to_path_buf(),
                message: format!(
                    "{name}: unsupported CTranslate2 dtype {other} (quantized files are not supported; use an f16 or f32 conversion)"
                ),
            });
        }
    };
    let elems: usize = raw.dims.iter().product();
    if elems * size != raw.data.len() {
        return Err(Error::Config {
            path: path.to_path_buf(),
            message: format!("{name}: {} bytes for shape {:?}", raw.data.len(), raw.dims),
        });
    }
    Tensor::from_raw_buffer(&raw.data, dtype, &raw.dims, &Device::Cpu).context(name)
}

/// Converts a CTranslate2 Whisper file into Hugging Face–named tensors (dtypes kept), plus the
/// architecture numbers that the `config.json` needs.
pub fn convert(path: &Path) -> Result<(HashMap<String, Tensor>, Ct2Dims)> {
    let bytes = fs_err::read(path)?;
    let raw = read(path, &bytes)?;
    drop(bytes);
    let get = |name: &str| -> Result<Tensor> {
        let t = raw.get(name).ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            message: format!("tensor {name} is missing"),
        })?;
        to_tensor(path, name, t)
    };
    let count_layers = |side: &str| {
        (0..)
            .take_while(|i| raw.contains_key(&format!("{side}/layer_{i}/ffn/linear_0/weight")))
            .count()
    };
    let encoder_layers = count_layers("encoder");
    let decoder_layers = count_layers("decoder");
    let embed = get("decoder/embeddings/weight")?;
    let (vocab, d_model) = embed.dims2().context("decoder embeddings")?;
    let mut out = HashMap::new();
    let split = |t: &Tensor, parts: usize, i: usize| -> Result<Tensor> {
        let rows = t.dim(0).context("split")?;
        t.narrow(0, i * rows / parts, rows / parts).context("split")
    };
    let put_linear = |out: &mut HashMap<String, Tensor>, src: &str, dst: &str| -> Result<()> {
        out.insert(format!("{dst}.weight"), get(&format!("{src}/weight"))?);
        out.insert(format!("{dst}.bias"), get(&format!("{src}/bias"))?);
        Ok(())
    };
    let put_norm = |out: &mut HashMap<String, Tensor>, src: &str, dst: &str| -> Result<()> {
        out.insert(format!("{dst}.weight"), get(&format!("{src}/gamma"))?);
        out.insert(format!("{dst}.bias"), get(&format!("{src}/beta"))?);
        Ok(())
    };
    for (side, layers) in [("encoder", encoder_layers), ("decoder", decoder_layers)] {
        let hf = format!("model.{side}");
        for i in 0..layers {
            let src = format!("{side}/layer_{i}");
            let dst = format!("{hf}.layers.{i}");
            // Fused q/k/v: split by rows; the key has no bias in Whisper.
            let w = get(&format!("{src}/self_attention/linear_0/weight"))?;
            let b = get(&format!("{src}/self_attention/linear_0/bias"))?;
            for (j, proj) in ["q_proj", "k_proj", "v_proj"].iter().enumerate() {
                out.insert(format!("{dst}.self_attn.{proj}.weight"), split(&w, 3, j)?);
                if *proj != "k_proj" {
                    out.insert(format!("{dst}.self_attn.{proj}.bias"), split(&b, 3, j)?);
                }
            }
            put_linear(
                &mut out,
                &format!("{src}/self_attention/linear_1"),
                &format!("{dst}.self_attn.out_proj"),
            )?;
            put_norm(
                &mut out,
                &format!("{src}/self_attention/layer_norm"),
                &format!("{dst}.self_attn_layer_norm"),
            )?;
            if side == "decoder" {
                put_linear(
                    &mut out,
                    &format!("{src}/attention/linear_0"),
                    &format!("{dst}.encoder_attn.q_proj"),
                )?;
                let w = get(&format!("{src}/attention/linear_1/weight"))?;
                let b = get(&format!("{src}/attention/linear_1/bias"))?;
                out.insert(
                    format!("{dst}.encoder_attn.k_proj.weight"),
                    split(&w, 2, 0)?,
                );
                out.insert(
                    format!("{dst}.encoder_attn.v_proj.weight"),
                    split(&w, 2, 1)?,
                );
                out.insert(format!("{dst}.encoder_attn.v_proj.bias"), split(&b, 2, 1)?);
                put_linear(
                    &mut out,
                    &format!("{src}/attention/linear_2"),
                    &format!("{dst}.encoder_attn.out_proj"),
                )?;
                put_norm(
                    &mut out,
                    &format!("{src}/attention/layer_norm"),
                    &format!("{dst}.encoder_attn_layer_norm"),
                )?;
            }
            put_linear(
                &mut out,
                &format!("{src}/ffn/linear_0"),
                &format!("{dst}.fc1"),
            )?;
            put_linear(
                &mut out,
                &format!("{src}/ffn/linear_1"),
                &format!("{dst}.fc2"),
            )?;
            put_norm(
                &mut out,
                &format!("{src}/ffn/layer_norm"),
                &format!("{dst}.final_layer_norm"),
            )?;
        }
        put_norm(
            &mut out,
            &format!("{side}/layer_norm"),
            &format!("{hf}.layer_norm"),
        )?;
        out.insert(
            format!("{hf}.embed_positions.weight"),
            get(&format!("{side}/position_encodings/encodings"))?,
        );
    }
    for conv in ["conv1", "conv2"] {
        put_linear(
            &mut out,
            &format!("encoder/{conv}"),
            &format!("model.encoder.{conv}"),
        )?;
    }
    let num_mel_bins = get("encoder/conv1/weight")?.dim(1).context("conv1")?;
    let max_source_positions = get("encoder/position_encodings/encodings")?
        .dim(0)
        .context("encoder positions")?;
    let max_target_positions = get("decoder/position_encodings/encodings")?
        .dim(0)
        .context("decoder positions")?;
    let heads = |side: &str| -> Result<usize> {
        let name = format!("{side}/num_heads");
        let value = raw
            .get(&name)
            .and_then(|r| match (r.dtype, r.data.as_slice()) {
                (1, [a]) => Some(*a as usize),
                (2, [a, b]) => Some(i16::from_le_bytes([*a, *b]) as usize),
                (3, [a, b, c, d]) => Some(i32::from_le_bytes([*a, *b, *c, *d]) as usize),
                _ => None,
            });
        value.ok_or_else(|| Error::Config {
            path: path.to_path_buf(),
            message: format!("{name} is missing or not an integer scalar"),
        })
    };
    out.insert("model.decoder.embed_tokens.weight".into(), embed);
    Ok((
        out,
        Ct2Dims {
            num_mel_bins,
            d_model,
            vocab_size: vocab,
            encoder_layers,
            decoder_layers,
            encoder_attention_heads: heads("encoder")?,
            decoder_attention_heads: heads("decoder")?,
            max_source_positions,
            max_target_positions,
        },
    ))
}

/// The architecture numbers read from a CTranslate2 file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ct2Dims {
    pub num_mel_bins: usize,
    pub d_model: usize,
    pub vocab_size: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    pub encoder_attention_heads: usize,
    pub decoder_attention_heads: usize,
    pub max_source_positions: usize,
    pub max_target_positions: usize,
}
