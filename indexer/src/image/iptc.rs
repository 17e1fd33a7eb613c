//! IPTC-IIM, as Photoshop stores it in a JPEG's APP13 segment (resource 0x0404 of a "Photoshop
//! 3.0" block). Ours because the published crate keeps only the last of repeated datasets (the
//! keywords), prints to stdout and indexes without bounds checks; every read here is checked, and
//! damaged data ends the block, never the ingest.

use img_parts::Bytes;
use img_parts::jpeg::{Jpeg, markers};

/// Record 2 datasets Kairos reads.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Iim {
    pub object_name: Option<String>,
    pub headline: Option<String>,
    pub caption: Option<String>,
    pub keywords: Vec<String>,
    pub credit: Option<String>,
    pub byline: Option<String>,
    /// `CCYYMMDD`.
    pub date_created: Option<String>,
}

/// Reads the IIM of a JPEG; `None` when there is none or the file is not a JPEG.
pub fn read_jpeg(bytes: &[u8]) -> Option<Iim> {
    let jpeg = Jpeg::from_bytes(Bytes::copy_from_slice(bytes)).ok()?;
    let mut found = None;
    for segment in jpeg.segments_by_marker(markers::APP13) {
        if let Some(iim) = photoshop_iim(segment.contents()) {
            found = Some(parse_iim(iim));
        }
    }
    found
}

/// The IIM bytes inside a Photoshop image-resource block.
fn photoshop_iim(app13: &[u8]) -> Option<&[u8]> {
    let mut rest = app13.strip_prefix(b"Photoshop 3.0\0")?;
    while rest.len() >= 12 && &rest[..4] == b"8BIM" {
        let id = u16::from_be_bytes([rest[4], rest[5]]);
        // Pascal-string name, padded to an even length (length byte included).
        let name_len = rest[6] as usize;
        let name_total = (1 + name_len).next_multiple_of(2);
        let size_at = 6 + name_total;
        let size = u32::from_be_bytes(rest.get(size_at..size_at + 4)?.try_into().ok()?) as usize;
        let data_at = size_at + 4;
        let data = rest.get(data_at..data_at.checked_add(size)?)?;
        if id == 0x0404 {
            return Some(data);
        }
        rest = rest.get(data_at + size.next_multiple_of(2)..)?;
    }
    None
}

/// Parses IIM datasets: `0x1C record dataset length data`.
fn parse_iim(mut data: &[u8]) -> Iim {
    let mut iim = Iim::default();
    let mut utf8 = false;
    while data.len() >= 5 && data[0] == 0x1C {
        let (record, dataset) = (data[1], data[2]);
        let mut len = u16::from_be_bytes([data[3], data[4]]) as usize;
        let mut at = 5;
        if len & 0x8000 != 0 {
            // Extended length: the low bits give how many bytes hold the real length.
            let n = len & 0x7FFF;
            if n == 0 || n > 4 || data.len() < 5 + n {
                break;
            }
            len = data[5..5 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            at += n;
        }
        let Some(value) = data.get(at..at.saturating_add(len)) else {
            break;
        };
        data = &data[at + len..];
        if record == 1 && dataset == 90 {
            // Coded character set: ESC % G is UTF-8.
            utf8 = value == b"\x1b%G";
            continue;
        }
        if record != 2 {
            continue;
        }
        let text = decode(value, utf8);
        let text = text.trim().trim_matches('\0').trim().to_string();
        if text.is_empty() {
            continue;
        }
        match dataset {
            5 => iim.object_name = Some(text),
            25 => iim.keywords.push(text),
            55 => iim.date_created = Some(text),
            80 => iim.byline = Some(text),
            105 => iim.headline = Some(text),
            110 => iim.credit = Some(text),
            120 => iim.caption = Some(text),
            _ => {}
        }
    }
    iim
}

/// UTF-8 when declared or valid, otherwise Latin-1 (the IIM default in practice).
fn decode(value: &[u8], utf8: bool) -> String {
    match std::str::from_utf8(value) {
        Ok(s) => s.to_string(),
        Err(_) if utf8 => String::from_utf8_lossy(value).into_owned(),
        Err(_) => value.iter().map(|&b| b as char).collect(),
    }
}

/// Builds an APP13 segment holding the given record 2 datasets (tests and fixtures).
pub fn app13_for(datasets: &[(u8, &str)]) -> Vec<u8> {
    let mut iim = vec![0x1C, 1, 90, 0, 3, 0x1b, b'%', b'G'];
    for (dataset, value) in datasets {
        iim.extend_from_slice(&[0x1C, 2, *dataset]);
        iim.extend_from_slice(&(value.len() as u16).to_be_bytes());
        iim.extend_from_slice(value.as_bytes());
    }
    let mut out = b"Photoshop 3.0\0".to_vec();
    out.extend_from_slice(b"8BIM");
    out.extend_from_slice(&0x0404u16.to_be_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(iim.len() as u32).to_be_bytes());
    out.extend_from_slice(&iim);
    if iim.len() % 2 == 1 {
        out.push(0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keywords_and_latin1_text_are_kept() {
        let block = app13_for(&[
            (120, "Boxer lands an uppercut"),
            (25, "boxing"),
            (25, "final"),
            (110, "IOC"),
        ]);
        let iim = parse_iim(photoshop_iim(&block).unwrap());
        assert_eq!(iim.caption.as_deref(), Some("Boxer lands an uppercut"));
        assert_eq!(iim.keywords, ["boxing", "final"]);
        assert_eq!(iim.credit.as_deref(), Some("IOC"));
        // No character set declared, Latin-1 bytes: "Crée"; a dataset running past the end is dropped.
        let iim = parse_iim(&[
            0x1C, 2, 5, 0, 4, b'C', b'r', 0xE9, b'e', 0x1C, 2, 120, 0, 50, b'x',
        ]);
        assert_eq!(iim.object_name.as_deref(), Some("Crée"));
        assert_eq!(iim.caption, None);
    }

    #[test]
    fn truncated_blocks_never_panic() {
        let block = app13_for(&[(120, "A caption long enough to cut anywhere"), (25, "k")]);
        for cut in 0..block.len() {
            if let Some(iim) = photoshop_iim(&block[..cut]) {
                parse_iim(iim);
            }
        }
    }
}
