//! Photo metadata as archives carry it: EXIF (capture time, camera, GPS), IPTC-IIM and XMP
//! (title, caption, keywords, credit). Where several say the same thing, XMP wins over IPTC,
//! and IPTC over EXIF (the newer standard is the one editors keep up to date).

use std::io::Cursor;

use ::image::ImageFormat;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};

/// What the metadata of one image says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ImageMetadata {
    pub captured_at: Option<DateTime<Utc>>,
    pub camera: Option<String>,
    pub gps: Option<(f64, f64)>,
    pub title: Option<String>,
    pub caption: Option<String>,
    pub keywords: Vec<String>,
    pub credit: Option<String>,
    /// ISO 639-1 language of the caption, when the XMP declares one.
    pub language: Option<String>,
}

/// Reads every metadata block of an image; missing or damaged blocks are simply absent.
pub fn read(bytes: &[u8], format: ImageFormat) -> ImageMetadata {
    let mut meta = ImageMetadata::default();
    read_exif(bytes, &mut meta);
    if format == ImageFormat::Jpeg {
        read_iptc(bytes, &mut meta);
    }
    if let Some(packet) = find_xmp_packet(bytes) {
        read_xmp(packet, &mut meta);
    }
    meta.keywords.retain(|k| !k.trim().is_empty());
    meta.keywords.dedup();
    meta
}

fn non_empty(s: impl AsRef<str>) -> Option<String> {
    let t = s.as_ref().trim().trim_matches(char::from(0)).trim();
    (!t.is_empty()).then(|| t.to_string())
}

fn read_exif(bytes: &[u8], meta: &mut ImageMetadata) {
    use exif::{In, Tag, Value};
    let Ok(exif) = exif::Reader::new().read_from_container(&mut Cursor::new(bytes)) else {
        return;
    };
    let ascii = |tag: Tag| -> Option<String> {
        match &exif.get_field(tag, In::PRIMARY)?.value {
            Value::Ascii(v) => v
                .first()
                .and_then(|b| non_empty(String::from_utf8_lossy(b))),
            _ => None,
        }
    };
    for tag in [Tag::DateTimeOriginal, Tag::DateTimeDigitized, Tag::DateTime] {
        if let Some(f) = exif.get_field(tag, In::PRIMARY)
            && let Value::Ascii(v) = &f.value
            && let Some(dt) = v.first().and_then(|b| exif::DateTime::from_ascii(b).ok())
            && let Some(date) =
                NaiveDate::from_ymd_opt(dt.year.into(), dt.month.into(), dt.day.into())
            && let Some(t) = date.and_hms_opt(dt.hour.into(), dt.minute.into(), dt.second.into())
        {
            meta.captured_at = Some(Utc.from_utc_datetime(&t));
            break;
        }
    }
    let camera = [ascii(Tag::Make), ascii(Tag::Model)]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>();
    if !camera.is_empty() {
        meta.camera = Some(camera.join(" "));
    }
    let coord = |value: Tag, reference: Tag, negative: &str| -> Option<f64> {
        let Value::Rational(r) = &exif.get_field(value, In::PRIMARY)?.value else {
            return None;
        };
        if r.len() < 3 {
            return None;
        }
        let deg = r[0].to_f64() + r[1].to_f64() / 60.0 + r[2].to_f64() / 3600.0;
        let sign = if ascii(reference).as_deref() == Some(negative) {
            -1.0
        } else {
            1.0
        };
        deg.is_finite().then_some(sign * deg)
    };
    if let (Some(lat), Some(lon)) = (
        coord(Tag::GPSLatitude, Tag::GPSLatitudeRef, "S"),
        coord(Tag::GPSLongitude, Tag::GPSLongitudeRef, "W"),
    ) {
        meta.gps = Some((lat, lon));
    }
    meta.caption = ascii(Tag::ImageDescription);
    meta.credit = ascii(Tag::Artist).or_else(|| ascii(Tag::Copyright));
}

fn read_iptc(bytes: &[u8], meta: &mut ImageMetadata) {
    let Some(iim) = super::iptc::read_jpeg(bytes) else {
        return;
    };
    if let Some(t) = iim.object_name.or(iim.headline) {
        meta.title = Some(t);
    }
    if let Some(c) = iim.caption {
        meta.caption = Some(c);
    }
    if !iim.keywords.is_empty() {
        meta.keywords = iim.keywords;
    }
    if let Some(c) = iim.credit.or(iim.byline) {
        meta.credit = Some(c);
    }
    if meta.captured_at.is_none()
        && let Some(d) = iim.date_created
        && let Ok(date) = NaiveDate::parse_from_str(&d, "%Y%m%d")
    {
        meta.captured_at = date.and_hms_opt(0, 0, 0).map(|t| Utc.from_utc_datetime(&t));
    }
}

/// Locates an XMP packet by scanning for its wrapper, as the XMP specification (part 3, "scanning
/// files for XMP packets") allows for any file format.
pub fn find_xmp_packet(bytes: &[u8]) -> Option<&[u8]> {
    let start = find(bytes, b"<x:xmpmeta").or_else(|| find(bytes, b"<rdf:RDF"))?;
    let rest = &bytes[start..];
    let end = find(rest, b"</x:xmpmeta>")
        .map(|e| e + "</x:xmpmeta>".len())
        .or_else(|| find(rest, b"</rdf:RDF>").map(|e| e + "</rdf:RDF>".len()))?;
    Some(&rest[..end])
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

const NS_DC: &str = "http://purl.org/dc/elements/1.1/";
const NS_PHOTOSHOP: &str = "http://ns.adobe.com/photoshop/1.0/";
const NS_XMP: &str = "http://ns.adobe.com/xap/1.0/";
const NS_RDF: &str = "http://www.w3.org/1999/02/22-rdf-syntax-ns#";
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";

fn read_xmp(packet: &[u8], meta: &mut ImageMetadata) {
    let Ok(text) = std::str::from_utf8(packet) else {
        return;
    };
    let Ok(doc) = roxmltree::Document::parse(text) else {
        return;
    };
    // A property is an element (simple value, or rdf:Alt/Bag/Seq of rdf:li) or an attribute of
    // rdf:Description.
    let values = |ns: &str, name: &str| -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for node in doc.descendants() {
            if node.is_element()
                && node.tag_name().namespace() == Some(NS_RDF)
                && node.tag_name().name() == "Description"
                && let Some(v) = node.attribute((ns, name)).and_then(non_empty)
            {
                out.push((v, None));
            }
            if node.is_element()
                && node.tag_name().namespace() == Some(ns)
                && node.tag_name().name() == name
            {
                let items: Vec<_> = node
                    .descendants()
                    .filter(|n| {
                        n.is_element()
                            && n.tag_name().namespace() == Some(NS_RDF)
                            && n.tag_name().name() == "li"
                    })
                    .collect();
                if items.is_empty() {
                    if let Some(v) = node.text().and_then(non_empty) {
                        out.push((v, None));
                    }
                } else {
                    for li in items {
                        if let Some(v) = li.text().and_then(non_empty) {
                            out.push((v, li.attribute((NS_XML, "lang")).map(str::to_string)));
                        }
                    }
                }
            }
        }
        out
    };
    let first = |ns: &str, name: &str| values(ns, name).into_iter().next();
    if let Some((t, _)) = first(NS_DC, "title").or_else(|| first(NS_PHOTOSHOP, "Headline")) {
        meta.title = Some(t);
    }
    let descriptions = values(NS_DC, "description");
    // Prefer the default-language alternative; keep its declared language.
    if let Some((c, lang)) = descriptions
        .iter()
        .find(|(_, l)| l.as_deref() == Some("x-default"))
        .or_else(|| descriptions.first())
        .cloned()
    {
        meta.caption = Some(c);
        let specific = descriptions
            .iter()
            .find_map(|(_, l)| l.clone().filter(|l| l != "x-default"));
        meta.language = lang
            .filter(|l| l != "x-default")
            .or(specific)
            .map(|l| l[..l.len().min(2)].to_ascii_lowercase());
    }
    let subjects: Vec<String> = values(NS_DC, "subject")
        .into_iter()
        .map(|(v, _)| v)
        .collect();
    if !subjects.is_empty() {
        meta.keywords = subjects;
    }
    if let Some((c, _)) = first(NS_PHOTOSHOP, "Credit").or_else(|| first(NS_DC, "creator")) {
        meta.credit = Some(c);
    }
    if meta.captured_at.is_none()
        && let Some((d, _)) =
            first(NS_PHOTOSHOP, "DateCreated").or_else(|| first(NS_XMP, "CreateDate"))
    {
        meta.captured_at = parse_xmp_date(&d);
    }
}

/// XMP dates: `YYYY`, `YYYY-MM-DD`, `YYYY-MM-DDThh:mm[:ss][TZ]`.
fn parse_xmp_date(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .or_else(|| {
            s.parse::<i32>()
                .ok()
                .and_then(|y| NaiveDate::from_ymd_opt(y, 1, 1))
        })
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg() -> Vec<u8> {
        let img = ::image::DynamicImage::ImageRgb8(::image::RgbImage::from_pixel(
            16,
            16,
            ::image::Rgb([1, 2, 3]),
        ));
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Jpeg).unwrap();
        out.into_inner()
    }

    const XMP: &str = r#"<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/"
  photoshop:Credit="IOC / Greg Martin" photoshop:DateCreated="2024-07-26T19:30:00+02:00">
<dc:title><rdf:Alt><rdf:li xml:lang="x-default">Cérémonie d'ouverture</rdf:li></rdf:Alt></dc:title>
<dc:description><rdf:Alt><rdf:li xml:lang="fr-FR">Les athlètes défilent sur la Seine</rdf:li></rdf:Alt></dc:description>
<dc:subject><rdf:Bag><rdf:li>Paris 2024</rdf:li><rdf:li>ceremony</rdf:li></rdf:Bag></dc:subject>
</rdf:Description></rdf:RDF></x:xmpmeta><?xpacket end="w"?>"#;

    fn with_xmp(jpeg: Vec<u8>) -> Vec<u8> {
        use img_parts::{
            Bytes,
            jpeg::{Jpeg, JpegSegment, markers},
        };
        let mut j = Jpeg::from_bytes(Bytes::from(jpeg)).unwrap();
        let mut contents = b"http://ns.adobe.com/xap/1.0/\0".to_vec();
        contents.extend_from_slice(XMP.as_bytes());
        j.segments_mut().insert(
            1,
            JpegSegment::new_with_contents(markers::APP1, Bytes::from(contents)),
        );
        let mut out = Vec::new();
        j.encoder().write_to(&mut out).unwrap();
        out
    }

    #[test]
    fn xmp_caption_keywords_credit_date_and_language_are_read() {
        let m = read(&with_xmp(jpeg()), ImageFormat::Jpeg);
        assert_eq!(m.title.as_deref(), Some("Cérémonie d'ouverture"));
        assert_eq!(
            m.caption.as_deref(),
            Some("Les athlètes défilent sur la Seine")
        );
        assert_eq!(m.keywords, ["Paris 2024", "ceremony"]);
        assert_eq!(m.credit.as_deref(), Some("IOC / Greg Martin"));
        assert_eq!(m.language.as_deref(), Some("fr"));
        assert_eq!(
            m.captured_at.unwrap().to_rfc3339(),
            "2024-07-26T17:30:00+00:00"
        );
    }

    #[test]
    fn iptc_caption_and_keywords_are_read() {
        use img_parts::{
            Bytes,
            jpeg::{Jpeg, JpegSegment, markers},
        };
        let app13 = crate::image::iptc::app13_for(&[
            (120, "Boxer lands an uppercut in the final round"),
            (25, "boxing"),
            (25, "final"),
            (110, "Kairos test"),
        ]);
        let mut j = Jpeg::from_bytes(Bytes::from(jpeg())).unwrap();
        j.segments_mut().insert(
            1,
            JpegSegment::new_with_contents(markers::APP13, Bytes::from(app13)),
        );
        let mut bytes = Vec::new();
        j.encoder().write_to(&mut bytes).unwrap();
        let m = read(&bytes, ImageFormat::Jpeg);
        assert_eq!(
            m.caption.as_deref(),
            Some("Boxer lands an uppercut in the final round")
        );
        assert_eq!(m.keywords, ["boxing", "final"]);
        assert_eq!(m.credit.as_deref(), Some("Kairos test"));
    }

    #[test]
    fn exif_capture_time_camera_and_gps_are_read() {
        use exif::experimental::Writer;
        use exif::{Field, In, Rational, Tag, Value};
        let fields = [
            Field {
                tag: Tag::Make,
                ifd_num: In::PRIMARY,
                value: Value::Ascii(vec![b"Canon".to_vec()]),
            },
            Field {
                tag: Tag::DateTimeOriginal,
                ifd_num: In::PRIMARY,
                value: Value::Ascii(vec![b"2024:08:04 21:15:09".to_vec()]),
            },
            Field {
                tag: Tag::GPSLatitudeRef,
                ifd_num: In::PRIMARY,
                value: Value::Ascii(vec![b"N".to_vec()]),
            },
            Field {
                tag: Tag::GPSLatitude,
                ifd_num: In::PRIMARY,
                value: Value::Rational(vec![
                    Rational::from((48, 1)),
                    Rational::from((51, 1)),
                    Rational::from((0, 1)),
                ]),
            },
            Field {
                tag: Tag::GPSLongitudeRef,
                ifd_num: In::PRIMARY,
                value: Value::Ascii(vec![b"E".to_vec()]),
            },
            Field {
                tag: Tag::GPSLongitude,
                ifd_num: In::PRIMARY,
                value: Value::Rational(vec![
                    Rational::from((2, 1)),
                    Rational::from((21, 1)),
                    Rational::from((0, 1)),
                ]),
            },
        ];
        let mut writer = Writer::new();
        for f in &fields {
            writer.push_field(f);
        }
        let mut tiff = Cursor::new(Vec::new());
        writer.write(&mut tiff, false).unwrap();
        use img_parts::{Bytes, ImageEXIF, jpeg::Jpeg};
        let mut j = Jpeg::from_bytes(Bytes::from(jpeg())).unwrap();
        j.set_exif(Some(Bytes::from(tiff.into_inner())));
        let mut bytes = Vec::new();
        j.encoder().write_to(&mut bytes).unwrap();
        let m = read(&bytes, ImageFormat::Jpeg);
        assert_eq!(
            m.captured_at.unwrap().to_rfc3339(),
            "2024-08-04T21:15:09+00:00"
        );
        assert_eq!(m.camera.as_deref(), Some("Canon"));
        let (lat, lon) = m.gps.unwrap();
        assert!(
            (lat - 48.85).abs() < 1e-6 && (lon - 2.35).abs() < 1e-6,
            "{lat} {lon}"
        );
    }

    #[test]
    fn damaged_metadata_is_ignored_not_fatal() {
        let mut bytes = jpeg();
        bytes.truncate(40);
        assert_eq!(read(&bytes, ImageFormat::Jpeg).caption, None);
        assert_eq!(find_xmp_packet(b"<x:xmpmeta unterminated"), None);
    }
}
