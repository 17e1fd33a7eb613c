//! Manifests: the catalogue records an archive hands over with its files, as CSV or JSON, one
//! record a file. Their title, caption, keywords, collection, date, credit and language are
//! merged into the asset, over what the file's own metadata says (the catalogue is the
//! archive's reference).
//!
//! CSV: a header row naming the columns, `path` (or `file`, `filename`) required; JSON: an array
//! of objects with the same keys. A path is absolute or relative to the manifest's folder; a bare
//! file name matches that name anywhere in the ingest when no other record has it. Keywords are
//! separated by `;` (or `,` when there is no `;`); a JSON record may give them as an array.
//! Columns the manifest does not know are ignored and reported.

use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use kairos_store::{Asset, MetadataPatch};

use crate::error::{Error, Result};

/// One file's catalogue record; `None` leaves what the file says.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Record {
    pub title: Option<String>,
    pub caption: Option<String>,
    pub keywords: Option<Vec<String>>,
    pub collection: Option<String>,
    pub captured_at: Option<DateTime<Utc>>,
    pub credit: Option<String>,
    pub language: Option<String>,
}

impl Record {
    /// Puts the record's values on `asset`.
    pub fn apply(&self, asset: &mut Asset) {
        let set = |value: &Option<String>, slot: &mut Option<String>| {
            if let Some(v) = value {
                *slot = Some(v.clone());
            }
        };
        set(&self.title, &mut asset.title);
        set(&self.caption, &mut asset.caption);
        set(&self.collection, &mut asset.collection);
        set(&self.credit, &mut asset.credit);
        set(&self.language, &mut asset.language);
        if let Some(k) = &self.keywords {
            asset.keywords = k.clone();
        }
        if self.captured_at.is_some() {
            asset.captured_at = self.captured_at;
        }
    }

    /// The change an already indexed `asset` needs to carry this record's title, caption,
    /// keywords and collection; `None` when it carries them.
    pub fn patch_for(&self, asset: &Asset) -> Option<MetadataPatch> {
        let differs = |value: &Option<String>, have: &Option<String>| {
            value
                .as_ref()
                .filter(|v| Some(*v) != have.as_ref())
                .cloned()
        };
        let patch = MetadataPatch {
            title: differs(&self.title, &asset.title),
            caption: differs(&self.caption, &asset.caption),
            keywords: self
                .keywords
                .as_ref()
                .filter(|k| **k != asset.keywords)
                .cloned(),
            collection: differs(&self.collection, &asset.collection),
        };
        (!patch.is_empty()).then_some(patch)
    }
}

/// A parsed manifest.
#[derive(Debug, Clone, Default)]
pub struct Manifest {
    pub path: PathBuf,
    by_path: HashMap<PathBuf, Record>,
    /// Records given by a bare file name, with how many records gave that name.
    by_name: HashMap<String, (Record, usize)>,
    /// Columns (or JSON keys) that were ignored.
    pub ignored: Vec<String>,
}

const PATH_KEYS: [&str; 3] = ["path", "file", "filename"];

impl Manifest {
    /// Reads the manifest at `path`: `.json` as JSON, anything else as CSV.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = fs_err::read(path)?;
        let base = path
            .canonicalize()
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_default();
        let json = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("json"));
        Self::parse(path, &base, &bytes, json)
    }

    /// Parses manifest bytes; `path` names the manifest in errors, `base` is the folder relative
    /// paths start from.
    pub fn parse(path: &Path, base: &Path, bytes: &[u8], json: bool) -> Result<Self> {
        let mut manifest = Self {
            path: path.to_path_buf(),
            ..Default::default()
        };
        let rows = if json {
            json_rows(path, bytes)?
        } else {
            csv_rows(path, bytes)?
        };
        let mut lines: HashMap<PathBuf, usize> = HashMap::new();
        let mut ignored = std::collections::BTreeSet::new();
        for (line, fields) in rows {
            let err = |field: &str, message: String| Error::Manifest {
                path: path.to_path_buf(),
                message: format!("line {line}, field {field}: {message}"),
            };
            let mut record = Record::default();
            let mut file = None;
            for (key, value) in fields {
                let key = key.trim().to_ascii_lowercase();
                let text = value.text().map(|t| t.trim().to_string());
                let text = text.filter(|t| !t.is_empty());
                match key.as_str() {
                    k if PATH_KEYS.contains(&k) => file = text,
                    "title" => record.title = text,
                    "caption" | "description" => record.caption = text,
                    "collection" => record.collection = text,
                    "credit" | "creator" | "photographer" => record.credit = text,
                    "keywords" | "tags" => record.keywords = value.list(),
                    "language" | "lang" => {
                        record.language = match text {
                            Some(l) if is_language(&l) => Some(l.to_ascii_lowercase()),
                            Some(l) => {
                                return Err(err(
                                    &key,
                                    format!("{l:?} is not a two-letter language code (en, fr…)"),
                                ));
                            }
                            None => None,
                        }
                    }
                    "date" | "captured_at" | "date_created" => {
                        record.captured_at = match text {
                            Some(t) => Some(parse_date(&t).ok_or_else(|| {
                                err(
                                    &key,
                                    format!(
                                        "{t:?} is not a date (YYYY, YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339)"
                                    ),
                                )
                            })?),
                            None => None,
                        }
                    }
                    _ => {
                        ignored.insert(key);
                    }
                }
            }
            let Some(file) = file else {
                return Err(err(
                    "path",
                    "no file named (a path, file or filename column)".into(),
                ));
            };
            let relative = Path::new(&file);
            let bare = relative.components().count() == 1 && !relative.is_absolute();
            if bare {
                let slot = manifest
                    .by_name
                    .entry(file.clone())
                    .or_insert_with(|| (record.clone(), 0));
                slot.1 += 1;
            }
            let full = normalise(&base.join(relative));
            if let Some(first) = lines.insert(full.clone(), line) {
                return Err(err(
                    "path",
                    format!("{file:?} has a record already, on line {first}"),
                ));
            }
            manifest.by_path.insert(full, record);
        }
        manifest.ignored = ignored.into_iter().collect();
        Ok(manifest)
    }

    /// The record of `file` (an absolute path), if the manifest has one.
    pub fn record(&self, file: &Path) -> Option<&Record> {
        self.by_path.get(&normalise(file)).or_else(|| {
            let name = file.file_name()?.to_str()?;
            self.by_name
                .get(name)
                .filter(|(_, count)| *count == 1)
                .map(|(r, _)| r)
        })
    }

    /// How many records the manifest holds.
    pub fn len(&self) -> usize {
        self.by_path.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_path.is_empty()
    }
}

/// A field's value: CSV text, or JSON text, number or list.
enum Value {
    Text(String),
    List(Vec<String>),
}

impl Value {
    fn text(&self) -> Option<String> {
        match self {
            Value::Text(t) => Some(t.clone()),
            Value::List(l) => Some(l.join("; ")),
        }
    }

    fn list(&self) -> Option<Vec<String>> {
        let items: Vec<String> = match self {
            Value::List(l) => l.iter().map(|k| k.trim().to_string()).collect(),
            Value::Text(t) => {
                let separator = if t.contains(';') { ';' } else { ',' };
                t.split(separator).map(|k| k.trim().to_string()).collect()
            }
        };
        let items: Vec<String> = items.into_iter().filter(|k| !k.is_empty()).collect();
        (!items.is_empty()).then_some(items)
    }
}

type Rows = Vec<(usize, Vec<(String, Value)>)>;

fn csv_rows(path: &Path, bytes: &[u8]) -> Result<Rows> {
    // A byte-order mark (spreadsheets write one) is not part of the first column's name.
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let err = |message: String| Error::Manifest {
        path: path.to_path_buf(),
        message,
    };
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| err(format!("header row: {e}")))?
        .clone();
    if !headers
        .iter()
        .any(|h| PATH_KEYS.contains(&h.trim().to_ascii_lowercase().as_str()))
    {
        return Err(err(format!(
            "the header row names no path, file or filename column (it has {:?})",
            headers.iter().collect::<Vec<_>>()
        )));
    }
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| match e.position() {
            Some(p) => err(format!("line {}: {e}", p.line())),
            None => err(e.to_string()),
        })?;
        let line = record.position().map(|p| p.line() as usize).unwrap_or(0);
        let fields = headers
            .iter()
            .zip(record.iter())
            .map(|(h, v)| (h.to_string(), Value::Text(v.to_string())))
            .collect();
        rows.push((line, fields));
    }
    Ok(rows)
}

fn json_rows(path: &Path, bytes: &[u8]) -> Result<Rows> {
    let err = |message: String| Error::Manifest {
        path: path.to_path_buf(),
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| err(format!("line {}: {e}", e.line())))?;
    let serde_json::Value::Array(items) = value else {
        return Err(err("expected an array of records".into()));
    };
    let mut rows = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        // JSON records are numbered from 1, like lines.
        let n = i + 1;
        let serde_json::Value::Object(map) = item else {
            return Err(err(format!("record {n}: expected an object")));
        };
        let mut fields = Vec::new();
        for (key, v) in map {
            let value = match v {
                serde_json::Value::String(s) => Value::Text(s),
                serde_json::Value::Number(x) => Value::Text(x.to_string()),
                serde_json::Value::Null => Value::Text(String::new()),
                serde_json::Value::Array(a) => Value::List(
                    a.into_iter()
                        .map(|x| match x {
                            serde_json::Value::String(s) => Ok(s),
                            serde_json::Value::Number(x) => Ok(x.to_string()),
                            _ => Err(err(format!(
                                "record {n}, field {key}: a list may hold only text"
                            ))),
                        })
                        .collect::<Result<_>>()?,
                ),
                _ => {
                    return Err(err(format!(
                        "record {n}, field {key}: expected text, a number or a list"
                    )));
                }
            };
            fields.push((key, value));
        }
        rows.push((n, fields));
    }
    Ok(rows)
}

fn is_language(code: &str) -> bool {
    code.len() == 2 && code.chars().all(|c| c.is_ascii_alphabetic())
}

/// A catalogue date: RFC 3339, `YYYY-MM-DD HH:MM:SS`, `YYYY-MM-DD`, `YYYY-MM` or `YYYY`.
fn parse_date(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    let day = |y: &str, m: &str, d: &str| -> Option<DateTime<Utc>> {
        let date = NaiveDate::from_ymd_opt(y.parse().ok()?, m.parse().ok()?, d.parse().ok()?)?;
        Some(date.and_hms_opt(0, 0, 0)?.and_utc())
    };
    let parts: Vec<&str> = text.split('-').collect();
    let digits = |p: &str, n: usize| p.len() == n && p.chars().all(|c| c.is_ascii_digit());
    match parts.as_slice() {
        [y, m, d] if digits(y, 4) && digits(m, 2) && digits(d, 2) => day(y, m, d),
        [y, m] if digits(y, 4) && digits(m, 2) => day(y, m, "01"),
        [y] if digits(y, 4) => day(y, "01", "01"),
        _ => None,
    }
}

/// `a/./b/../c` → `a/c`, without touching the disk (the file may not exist).
fn normalise(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str, json: bool) -> Result<Manifest> {
        Manifest::parse(
            Path::new("/archive/records.csv"),
            Path::new("/archive"),
            text.as_bytes(),
            json,
        )
    }

    #[test]
    fn csv_records_by_relative_path_and_by_bare_name() {
        let m = parse(
            "\u{feff}Path,Title,Caption,Keywords,Collection,Date,Credit,Language,Shelf\n\
             photos/1936/start.jpg,The start,\"Runners, at the line\",athletics; Berlin,olympics-1936,1936-08-03,Agency,en,B12\n\
             final.mp4,Final,,,,1936,,FR,\n",
            false,
        )
        .unwrap();
        assert_eq!(m.len(), 2);
        assert_eq!(m.ignored, ["shelf"]);
        let r = m
            .record(Path::new("/archive/photos/1936/start.jpg"))
            .unwrap();
        assert_eq!(r.title.as_deref(), Some("The start"));
        assert_eq!(r.caption.as_deref(), Some("Runners, at the line"));
        assert_eq!(r.keywords.as_deref().unwrap(), ["athletics", "Berlin"]);
        assert_eq!(
            r.captured_at.unwrap().to_rfc3339(),
            "1936-08-03T00:00:00+00:00"
        );
        assert_eq!(r.language.as_deref(), Some("en"));
        let by_name = m.record(Path::new("/elsewhere/video/final.mp4")).unwrap();
        assert_eq!(by_name.title.as_deref(), Some("Final"));
        assert_eq!(by_name.caption, None, "an empty cell leaves the file's own");
        assert_eq!(by_name.language.as_deref(), Some("fr"));
        assert!(m.record(Path::new("/archive/other.jpg")).is_none());
    }

    #[test]
    fn json_records_take_lists_and_numbers() {
        let m = parse(
            r#"[{"file": "/abs/a.jpg", "keywords": ["swim", "relay"], "date": "2024-07-28T10:00:00Z"},
                {"filename": "b.jpg", "title": 42}]"#,
            true,
        )
        .unwrap();
        assert_eq!(
            m.record(Path::new("/abs/a.jpg"))
                .unwrap()
                .keywords
                .as_deref()
                .unwrap(),
            ["swim", "relay"]
        );
        assert_eq!(
            m.record(Path::new("/archive/b.jpg"))
                .unwrap()
                .title
                .as_deref(),
            Some("42")
        );
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let e = |text: &str, json: bool| parse(text, json).unwrap_err().to_string();
        assert_eq!(
            e("path,date\na.jpg,2024-01-01\nb.jpg,31/12/2024\n", false),
            "manifest /archive/records.csv: line 3, field date: \"31/12/2024\" is not a date (YYYY, YYYY-MM-DD, YYYY-MM-DD HH:MM:SS or RFC 3339)"
        );
        assert!(e("title\nx\n", false).contains("names no path"));
        assert!(e("path,title\na.jpg\n", false).contains("line 2"));
        assert!(e("path,language\na.jpg,english\n", false).contains("field language"));
        assert!(e("path\na.jpg\n./a.jpg\n", false).contains("on line 2"));
        assert!(e("path,title\n,x\n", false).contains("line 2, field path"));
        assert!(e("{\"path\": \"a\"}", true).contains("array"));
        assert!(e("[{\"path\": {}}]", true).contains("record 1, field path"));
        assert!(e("[1", true).contains("line 1"));
    }

    #[test]
    fn a_record_patches_only_what_differs() {
        let mut asset = Asset::new(
            "h".into(),
            "/a.jpg".into(),
            kairos_store::AssetKind::Image,
            1,
        );
        asset.title = Some("Old".into());
        let record = Record {
            title: Some("New".into()),
            keywords: Some(vec!["k".into()]),
            ..Default::default()
        };
        let patch = record.patch_for(&asset).unwrap();
        assert_eq!(patch.title.as_deref(), Some("New"));
        assert_eq!(patch.caption, None);
        record.apply(&mut asset);
        assert_eq!(record.patch_for(&asset), None);
    }
}
