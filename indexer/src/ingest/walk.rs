//! Finding the files of an ingest: folder trees walked in a stable order, kept or left by
//! include and exclude globs, symbolic links followed only when asked.

use std::path::{Path, PathBuf};

use globset::{Glob, GlobSet, GlobSetBuilder};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::probe;

/// Which files of the trees an ingest takes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WalkOptions {
    /// Only files matching one of these globs (when any is given), e.g. `*.jpg`, `2024/**`.
    #[serde(default)]
    pub include: Vec<String>,
    /// No file or folder matching one of these globs, e.g. `**/proxies/**`, `*.tmp.mp4`.
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Walk into linked folders and take linked files (a link loop is a per-path error).
    #[serde(default)]
    pub follow_symlinks: bool,
}

/// The compiled globs. They match a path relative to the folder named on the command line
/// (`2024/final.jpg`) and the file's name alone, so `*.jpg` takes every JPEG at any depth.
struct Globs {
    include: Option<GlobSet>,
    exclude: GlobSet,
}

fn compile(option: &'static str, patterns: &[String]) -> Result<GlobSet> {
    let mut set = GlobSetBuilder::new();
    for pattern in patterns {
        let glob = Glob::new(pattern).map_err(|e| Error::Option {
            option,
            message: format!("{pattern:?} is not a glob: {e}"),
        })?;
        set.add(glob);
    }
    set.build().map_err(|e| Error::Option {
        option,
        message: e.to_string(),
    })
}

impl Globs {
    fn new(options: &WalkOptions) -> Result<Self> {
        Ok(Self {
            include: (!options.include.is_empty())
                .then(|| compile("--include", &options.include))
                .transpose()?,
            exclude: compile("--exclude", &options.exclude)?,
        })
    }

    fn matches(set: &GlobSet, relative: &Path) -> bool {
        set.is_match(relative) || relative.file_name().is_some_and(|n| set.is_match(n))
    }

    fn excluded(&self, relative: &Path) -> bool {
        !relative.as_os_str().is_empty() && Self::matches(&self.exclude, relative)
    }

    fn included(&self, relative: &Path) -> bool {
        self.include
            .as_ref()
            .is_none_or(|set| Self::matches(set, relative))
    }
}

/// What a walk found: media files in a stable order, and paths that failed before reading
/// (missing, unsupported when named explicitly, unreadable folders, link loops).
#[derive(Debug, Default)]
pub struct Found {
    pub files: Vec<PathBuf>,
    pub failed: Vec<(PathBuf, String)>,
    /// Files left out by the globs.
    pub excluded: usize,
}

impl WalkOptions {
    /// Whether a walk of `root` would take the media file `path` (under it).
    pub fn admits(&self, root: &Path, path: &Path) -> Result<bool> {
        if probe::kind_of(path).is_none() {
            return Ok(false);
        }
        let globs = Globs::new(self)?;
        let relative = path.strip_prefix(root).unwrap_or(path);
        // An excluded folder anywhere above the file excludes it.
        let mut above = PathBuf::new();
        for part in relative.iter() {
            above.push(part);
            if globs.excluded(&above) {
                return Ok(false);
            }
        }
        Ok(globs.included(relative))
    }
}

/// Why a path that is neither a file nor a folder is not read.
pub(crate) const NOT_REGULAR: &str = "not a regular file (a pipe, socket or device)";

/// The error of a path that is neither a file nor a folder.
pub(crate) fn not_regular(path: &Path) -> String {
    format!("{}: {NOT_REGULAR}, not read", path.display())
}

/// Media files under `paths`. A file named on the command line is taken whatever the globs say;
/// the globs choose among the files of the folders named.
pub fn discover(paths: &[PathBuf], options: &WalkOptions) -> Result<Found> {
    let globs = Globs::new(options)?;
    let mut found = Found::default();
    for root in paths {
        // Absolute paths: the catalog must name the same file whatever folder `kairos` ran in.
        let root = &root.canonicalize().unwrap_or_else(|_| root.clone());
        if root.is_file() {
            if probe::kind_of(root).is_some() {
                found.files.push(root.clone());
            } else {
                let e = Error::Unsupported {
                    path: root.clone(),
                    reason: probe::supported_types(),
                };
                found.failed.push((root.clone(), e.to_string()));
            }
            continue;
        }
        match fs_err::metadata(root) {
            Err(_) => {
                found.failed.push((
                    root.clone(),
                    format!("{}: no such file or folder", root.display()),
                ));
                continue;
            }
            Ok(meta) if !meta.is_dir() => {
                found.failed.push((root.clone(), not_regular(root)));
                continue;
            }
            Ok(_) => {}
        }
        let mut walk = walkdir::WalkDir::new(root)
            .follow_links(options.follow_symlinks)
            .sort_by_file_name()
            .into_iter();
        while let Some(entry) = walk.next() {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    let p = e
                        .path()
                        .map(Path::to_path_buf)
                        .unwrap_or_else(|| root.clone());
                    found
                        .failed
                        .push((p.clone(), format!("cannot read {}: {e}", p.display())));
                    continue;
                }
            };
            let relative = entry.path().strip_prefix(root).unwrap_or(entry.path());
            if globs.excluded(relative) {
                if entry.file_type().is_dir() {
                    walk.skip_current_dir();
                } else if probe::kind_of(entry.path()).is_some() {
                    found.excluded += 1;
                }
                continue;
            }
            if probe::kind_of(entry.path()).is_none() {
                continue;
            }
            let kind = entry.file_type();
            if !kind.is_file() {
                // A pipe, socket or device with a media name would block or never end when
                // read: it fails alone. Links not followed and folders are left quietly.
                if !kind.is_dir() && !kind.is_symlink() {
                    found
                        .failed
                        .push((entry.path().to_path_buf(), not_regular(entry.path())));
                }
                continue;
            }
            if !globs.included(relative) {
                found.excluded += 1;
                continue;
            }
            found.files.push(entry.into_path());
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        for f in [
            "a.jpg",
            "b.png",
            "notes.txt",
            "2024/final.jpg",
            "2024/proxies/final-low.jpg",
            "2024/talk.mp3",
            "raw/c.jpg",
        ] {
            let p = tmp.path().join(f);
            fs_err::create_dir_all(p.parent().unwrap()).unwrap();
            fs_err::write(&p, b"x").unwrap();
        }
        tmp
    }

    fn names(found: &Found, root: &Path) -> Vec<String> {
        let root = root.canonicalize().unwrap();
        found
            .files
            .iter()
            .map(|f| f.strip_prefix(&root).unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn globs_include_and_exclude_files_and_whole_folders() {
        let tmp = tree();
        let root = vec![tmp.path().to_path_buf()];
        let all = discover(&root, &WalkOptions::default()).unwrap();
        assert_eq!(
            names(&all, tmp.path()),
            [
                "2024/final.jpg",
                "2024/proxies/final-low.jpg",
                "2024/talk.mp3",
                "a.jpg",
                "b.png",
                "raw/c.jpg"
            ]
        );
        let options = WalkOptions {
            include: vec!["*.jpg".into()],
            exclude: vec!["proxies".into(), "raw/**".into()],
            follow_symlinks: false,
        };
        let some = discover(&root, &options).unwrap();
        assert_eq!(names(&some, tmp.path()), ["2024/final.jpg", "a.jpg"]);
        // talk and b (not *.jpg), c (raw/**); proxies/ is not walked at all, so final-low is
        // not counted.
        assert_eq!(some.excluded, 3);
        let bad = WalkOptions {
            include: vec!["[".into()],
            ..Default::default()
        };
        let e = discover(&root, &bad).unwrap_err().to_string();
        assert!(e.starts_with("--include: \"[\""), "{e}");
    }

    #[cfg(unix)]
    #[test]
    fn pipes_with_media_names_fail_alone_and_are_not_opened() {
        let tmp = tree();
        let pipe = tmp.path().join("2024/live.mp4");
        let elsewhere = tempfile::tempdir().unwrap();
        let named = elsewhere.path().join("named.jpg");
        for p in [&pipe, &named] {
            let made = std::process::Command::new("mkfifo")
                .arg(p)
                .status()
                .unwrap();
            assert!(made.success());
        }
        // A pipe that is not media is none of our business.
        let other = tmp.path().join("fifo.txt");
        assert!(
            std::process::Command::new("mkfifo")
                .arg(&other)
                .status()
                .unwrap()
                .success()
        );
        let roots = vec![tmp.path().to_path_buf(), named.clone()];
        let found = discover(&roots, &WalkOptions::default()).unwrap();
        assert_eq!(found.files.len(), 6, "{:?}", found.files);
        let failed: Vec<_> = found.failed.iter().map(|(p, _)| p.clone()).collect();
        assert_eq!(
            failed,
            [pipe.canonicalize().unwrap(), named.canonicalize().unwrap()]
        );
        for (path, error) in &found.failed {
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(error.contains("not a regular file"), "{error}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn links_are_followed_only_when_asked_and_loops_are_errors() {
        let tmp = tree();
        let outside = tempfile::tempdir().unwrap();
        fs_err::write(outside.path().join("linked.jpg"), b"x").unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), tmp.path().join("2024/loop")).unwrap();
        let root = vec![tmp.path().to_path_buf()];
        let plain = discover(&root, &WalkOptions::default()).unwrap();
        assert_eq!(plain.files.len(), 6);
        assert!(plain.failed.is_empty());
        let follow = WalkOptions {
            follow_symlinks: true,
            ..Default::default()
        };
        let followed = discover(&root, &follow).unwrap();
        assert!(
            names(&followed, tmp.path()).contains(&"elsewhere/linked.jpg".to_string()),
            "{:?}",
            followed.files
        );
        assert_eq!(followed.failed.len(), 1, "{:?}", followed.failed);
        assert!(
            followed.failed[0].1.contains("loop"),
            "{:?}",
            followed.failed
        );
    }
}
