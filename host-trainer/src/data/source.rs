//! One view over "a folder or a zip (or a zip inside a zip)": list the files, read one.
//!
//! Names are relative paths with `/` separators. macOS archive litter (`__MACOSX/`,
//! `.DS_Store`, `._*` resource forks) is never listed, so loaders can search by suffix.

use std::fs::File;
use std::io::{BufReader, Cursor, Read, Seek};
use std::path::{Path, PathBuf};

use zip::ZipArchive;

use super::DataError;
use super::text::decode_utf8;

/// How deep [`Source::folder`] looks below its root. Enough for
/// `DIR/UCI HAR Dataset/train/Inertial Signals/x.txt`.
const MAX_FOLDER_DEPTH: usize = 4;

enum Kind {
    Folder(PathBuf),
    Zip(ZipArchive<BufReader<File>>),
    /// A zip member that is itself a zip (the UCI wrapper download), held in memory.
    Nested(ZipArchive<Cursor<Vec<u8>>>),
}

/// A folder or zip archive with its file list.
pub(crate) struct Source {
    kind: Kind,
    /// Prefix for error messages: the folder, `a.zip`, or `a.zip:inner.zip`.
    label: String,
    names: Vec<String>,
}

fn is_litter(name: &str) -> bool {
    name.starts_with("__MACOSX/")
        || name
            .split('/')
            .any(|part| part == ".DS_Store" || part.starts_with("._") || part == "__MACOSX")
}

fn zip_names<R: Read + Seek>(archive: &ZipArchive<R>) -> Vec<String> {
    let mut names: Vec<String> = archive
        .file_names()
        .filter(|n| !n.ends_with('/') && !is_litter(n))
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

impl Source {
    /// A folder, listed recursively (hidden entries and macOS litter skipped).
    pub(crate) fn folder(root: &Path) -> Result<Source, DataError> {
        let mut names = Vec::new();
        walk(root, root, 0, &mut names)?;
        names.sort();
        Ok(Source {
            kind: Kind::Folder(root.to_owned()),
            label: root.display().to_string(),
            names,
        })
    }

    /// A zip file. If `wanted` is not satisfied by its members but a member is itself
    /// a `.zip` that satisfies it, that inner archive is opened instead (held in memory).
    pub(crate) fn zip(
        path: &Path,
        wanted: &dyn Fn(&[String]) -> bool,
    ) -> Result<Source, DataError> {
        let label = path.display().to_string();
        let file = File::open(path).map_err(|e| DataError::io(&label, e))?;
        let archive = ZipArchive::new(BufReader::new(file)).map_err(|source| DataError::Zip {
            file: label.clone(),
            source,
        })?;
        let names = zip_names(&archive);
        let mut outer = Source {
            kind: Kind::Zip(archive),
            label,
            names,
        };
        if wanted(&outer.names) {
            return Ok(outer);
        }
        let inner_zips: Vec<String> = outer
            .names
            .iter()
            .filter(|n| n.to_ascii_lowercase().ends_with(".zip"))
            .cloned()
            .collect();
        for inner in inner_zips {
            let bytes = outer.read_bytes(&inner)?;
            let inner_label = outer.display(&inner);
            let archive = ZipArchive::new(Cursor::new(bytes)).map_err(|source| DataError::Zip {
                file: inner_label.clone(),
                source,
            })?;
            let names = zip_names(&archive);
            if wanted(&names) {
                return Ok(Source {
                    kind: Kind::Nested(archive),
                    label: inner_label,
                    names,
                });
            }
        }
        Ok(outer)
    }

    /// All file names (relative, `/`-separated, sorted).
    pub(crate) fn names(&self) -> &[String] {
        &self.names
    }

    /// What to call the whole source in messages.
    pub(crate) fn label(&self) -> &str {
        &self.label
    }

    /// What to call one of its files in messages: `folder/name` or `archive.zip:name`.
    pub(crate) fn display(&self, name: &str) -> String {
        match &self.kind {
            Kind::Folder(root) => root.join(name).display().to_string(),
            Kind::Zip(_) | Kind::Nested(_) => format!("{}:{}", self.label, name),
        }
    }

    pub(crate) fn contains(&self, name: &str) -> bool {
        self.names
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok()
    }

    /// Reads one file whole. A name that is not listed is a [`DataError::MissingFile`].
    pub(crate) fn read_bytes(&mut self, name: &str) -> Result<Vec<u8>, DataError> {
        if !self.contains(name) {
            return Err(DataError::MissingFile {
                container: self.label.clone(),
                name: name.to_owned(),
            });
        }
        let display = self.display(name);
        match &mut self.kind {
            Kind::Folder(root) => {
                std::fs::read(root.join(name)).map_err(|e| DataError::io(display, e))
            }
            Kind::Zip(archive) => read_member(archive, name, display),
            Kind::Nested(archive) => read_member(archive, name, display),
        }
    }

    /// Reads one text file whole; returns its display name with it.
    pub(crate) fn read_text(&mut self, name: &str) -> Result<(String, String), DataError> {
        let bytes = self.read_bytes(name)?;
        let display = self.display(name);
        let text = decode_utf8(bytes, &display)?;
        Ok((display, text))
    }
}

fn read_member<R: Read + Seek>(
    archive: &mut ZipArchive<R>,
    name: &str,
    display: String,
) -> Result<Vec<u8>, DataError> {
    let mut member = archive.by_name(name).map_err(|source| DataError::Zip {
        file: display.clone(),
        source,
    })?;
    // The size comes from the archive, so cap the reservation: a damaged header must
    // not make us allocate gigabytes before the read fails.
    let capacity = usize::try_from(member.size().min(1 << 30)).unwrap_or(0);
    let mut bytes = Vec::with_capacity(capacity);
    member
        .read_to_end(&mut bytes)
        .map_err(|e| DataError::io(display, e))?;
    Ok(bytes)
}

fn walk(root: &Path, dir: &Path, depth: usize, out: &mut Vec<String>) -> Result<(), DataError> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| DataError::io(dir.display().to_string(), e))?;
    for entry in entries {
        let entry = entry.map_err(|e| DataError::io(dir.display().to_string(), e))?;
        let path = entry.path();
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue; // not a name any dataset uses
        };
        if file_name.starts_with('.') || is_litter(file_name) {
            continue;
        }
        // Follows symlinks, so a linked data folder works.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            if depth < MAX_FOLDER_DEPTH {
                walk(root, &path, depth + 1, out)?;
            }
        } else if let Ok(rel) = path.strip_prefix(root) {
            let parts: Vec<&str> = rel.iter().filter_map(|p| p.to_str()).collect();
            out.push(parts.join("/"));
        }
    }
    Ok(())
}

/// Finds the file whose name is `suffix` or ends with `/suffix`. When several match,
/// the shortest path wins (the least nested copy); `None` if nothing matches.
pub(crate) fn find_suffix<'a>(names: &'a [String], suffix: &str) -> Option<&'a str> {
    names
        .iter()
        .filter(|n| {
            n.as_str() == suffix
                || (n.ends_with(suffix) && n.as_bytes()[n.len() - suffix.len() - 1] == b'/')
        })
        .min_by_key(|n| (n.len(), n.as_str()))
        .map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litter_is_recognised() {
        assert!(is_litter("__MACOSX/UCI HAR Dataset/._README.txt"));
        assert!(is_litter("UCI HAR Dataset/.DS_Store"));
        assert!(is_litter("UCI HAR Dataset/train/._y_train.txt"));
        assert!(!is_litter("UCI HAR Dataset/train/y_train.txt"));
    }

    #[test]
    fn suffix_search_respects_path_components() {
        let names = vec![
            "a/RawData/labels.txt".to_owned(),
            "b/xRawData/labels.txt".to_owned(),
            "RawData/labels.txt".to_owned(),
        ];
        assert_eq!(
            find_suffix(&names, "RawData/labels.txt"),
            Some("RawData/labels.txt")
        );
        assert_eq!(
            find_suffix(&names[..2], "RawData/labels.txt"),
            Some("a/RawData/labels.txt")
        );
        assert_eq!(find_suffix(&names[1..2], "RawData/labels.txt"), None);
    }
}
