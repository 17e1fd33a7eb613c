//! Choosing the frame that stands for a stretch of video: well exposed, with contrast and detail,
//! never black, never a flash, never the blur of a transition.

/// How good a keyframe this packed RGB frame would be: 0 (unusable: black, blown out) and up.
pub fn quality(rgb: &[u8], width: usize, height: usize) -> f32 {
    // Luma of every second pixel of every second row.
    let (w, h) = (width.div_ceil(2), height.div_ceil(2));
    if w < 3 || h < 3 {
        return 0.0;
    }
    let mut luma = Vec::with_capacity(w * h);
    for y in (0..height).step_by(2) {
        let row = &rgb[y * width * 3..(y + 1) * width * 3];
        for x in (0..width).step_by(2) {
            let p = &row[x * 3..x * 3 + 3];
            luma.push((0.299 * p[0] as f32 + 0.587 * p[1] as f32 + 0.114 * p[2] as f32) / 255.0);
        }
    }
    let n = luma.len() as f32;
    let mean = luma.iter().sum::<f32>() / n;
    let std = (luma.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n).sqrt();
    // Mean absolute Laplacian: detail, and what blur removes.
    let mut lap = 0f32;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let c = luma[y * w + x];
            lap += (4.0 * c
                - luma[y * w + x - 1]
                - luma[y * w + x + 1]
                - luma[(y - 1) * w + x]
                - luma[(y + 1) * w + x])
                .abs();
        }
    }
    let sharp = lap / ((w - 2) * (h - 2)) as f32;
    let exposure = ((mean - 0.07) / 0.1).clamp(0.0, 1.0) * ((0.97 - mean) / 0.1).clamp(0.0, 1.0);
    let contrast = (std / 0.25).min(1.0);
    let detail = sharp / (sharp + 0.02);
    exposure * (0.05 + contrast) * (0.05 + detail)
}

/// The best frame offered so far in one stretch of video.
#[derive(Debug, Default)]
pub struct Picker {
    best: Option<(usize, f32, Vec<u8>)>,
}

impl Picker {
    /// Offers frame `at` with its quality; keeps a copy when it is the best yet.
    pub fn offer(&mut self, at: usize, score: f32, rgb: &[u8]) {
        if score <= 0.0 {
            return;
        }
        match &mut self.best {
            Some((i, s, buf)) if score > *s => {
                *i = at;
                *s = score;
                buf.clear();
                buf.extend_from_slice(rgb);
            }
            Some(_) => {}
            None => self.best = Some((at, score, rgb.to_vec())),
        }
    }

    /// The chosen frame (index and pixels), leaving the picker empty.
    pub fn take(&mut self) -> Option<(usize, Vec<u8>)> {
        self.best.take().map(|(i, _, rgb)| (i, rgb))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn black_and_blown_out_frames_are_unusable_and_detail_beats_blur() {
        let (w, h) = (64, 36);
        assert_eq!(quality(&[0u8; 64 * 36 * 3], w, h), 0.0);
        assert_eq!(quality(&[255u8; 64 * 36 * 3], w, h), 0.0);
        let sharp: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let v = if (i % w / 4 + i / w / 4) % 2 == 0 {
                    40
                } else {
                    210
                };
                [v, v, v]
            })
            .collect();
        // The same pattern, smoothed into a gradient.
        let blurred: Vec<u8> = (0..w * h)
            .flat_map(|i| {
                let v = (40 + (i % w) * 170 / w) as u8;
                [v, v, v]
            })
            .collect();
        let flat = [128u8; 64 * 36 * 3];
        let (qs, qb, qf) = (
            quality(&sharp, w, h),
            quality(&blurred, w, h),
            quality(&flat, w, h),
        );
        assert!(qs > qb && qb > qf && qf > 0.0, "{qs} {qb} {qf}");
        let mut p = Picker::default();
        p.offer(1, qb, &blurred);
        p.offer(2, qs, &sharp);
        p.offer(3, qf, &flat);
        p.offer(4, 0.0, &[0u8; 64 * 36 * 3]);
        assert_eq!(p.take().map(|(i, _)| i), Some(2));
        assert!(p.take().is_none());
    }
}
