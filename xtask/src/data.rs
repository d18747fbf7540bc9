//! `cargo xtask data [--dir DIR]`: download the official UCI HAR (id 240) and HAPT
//! (id 341) zips from the UCI repository, with a progress bar and sha256 checks.
//!
//! Each file is streamed into `DIR/.NAME.part` while being hashed, checked (size and
//! sha256 where known), and only then renamed to `DIR/NAME`, so an interrupted or
//! corrupted download never looks like a finished one. A file already present is
//! verified instead of downloaded again.
//!
//! The UCI HAR zip's sha256 and size are known. No official checksum of the HAPT zip is
//! known: its size and sha256 are printed after download (not verified), so users can
//! record them.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};

/// One downloadable dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dataset {
    pub name: &'static str,
    pub url: &'static str,
    /// Name of the file in the data folder.
    pub file_name: &'static str,
    /// Expected size, when known.
    pub size_bytes: Option<u64>,
    /// Expected sha256 (lower-case hex), when known.
    pub sha256: Option<&'static str>,
}

/// The current UCI download of UCI HAR: a wrapper zip holding `UCI HAR Dataset.zip`.
pub const UCI_HAR: Dataset = Dataset {
    name: "UCI HAR (id 240)",
    url: "https://archive.ics.uci.edu/static/public/240/human+activity+recognition+using+smartphones.zip",
    file_name: "human+activity+recognition+using+smartphones.zip",
    size_bytes: Some(61_005_872),
    sha256: Some("c00b803081a5c797cd5e4b83700a9810b38d53d9d84e01917e090e1fdbc81031"),
};

/// The HAPT download (raw recordings in `RawData/`). No official checksum is known.
pub const HAPT: Dataset = Dataset {
    name: "HAPT (id 341)",
    url: "https://archive.ics.uci.edu/static/public/341/smartphone+based+recognition+of+human+activities+and+postural+transitions.zip",
    file_name: "smartphone+based+recognition+of+human+activities+and+postural+transitions.zip",
    size_bytes: None,
    sha256: None,
};

pub const DATASETS: [Dataset; 2] = [UCI_HAR, HAPT];

/// Options of `cargo xtask data`.
#[derive(Debug, Args)]
pub struct DataArgs {
    /// Folder to download into; default: $VSC_DATA_DIR, else `data/` in the workspace.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Download again even if a verified file is present.
    #[arg(long)]
    pub force: bool,
}

/// What a check of a file against a [`Dataset`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// Size and sha256 match the known values.
    Verified { size_bytes: u64 },
    /// No checksum is known; here is what the file has.
    Unverified { size_bytes: u64, sha256: String },
}

/// sha256 (lower-case hex) and length of everything `reader` yields.
pub fn sha256_of(mut reader: impl Read) -> std::io::Result<(String, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex(&hasher.finalize()), len))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a file's measured size and sha256 with the dataset's known values.
pub fn check(
    dataset: &Dataset,
    what: &Path,
    size_bytes: u64,
    sha256: &str,
) -> anyhow::Result<Verification> {
    if let Some(expected) = dataset.size_bytes
        && expected != size_bytes
    {
        bail!(
            "{}: {size_bytes} bytes, but {} is {expected} bytes (incomplete or changed download)",
            what.display(),
            dataset.name
        );
    }
    match dataset.sha256 {
        Some(expected) if !expected.eq_ignore_ascii_case(sha256) => bail!(
            "{}: sha256 {sha256} does not match {}'s known sha256 {expected}",
            what.display(),
            dataset.name
        ),
        Some(_) => Ok(Verification::Verified { size_bytes }),
        None => Ok(Verification::Unverified {
            size_bytes,
            sha256: sha256.to_owned(),
        }),
    }
}

/// Hashes the file at `path` and [`check`]s it.
pub fn verify_file(dataset: &Dataset, path: &Path) -> anyhow::Result<Verification> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let (sha256, size_bytes) = sha256_of(std::io::BufReader::new(file))
        .with_context(|| format!("reading {}", path.display()))?;
    check(dataset, path, size_bytes, &sha256)
}

/// Checks the finished temporary file and renames it to `dest`; on a mismatch the
/// temporary file is deleted and the error says why.
pub fn install(
    dataset: &Dataset,
    tmp: &Path,
    dest: &Path,
    size_bytes: u64,
    sha256: &str,
) -> anyhow::Result<Verification> {
    match check(dataset, dest, size_bytes, sha256) {
        Ok(verification) => {
            std::fs::rename(tmp, dest)
                .with_context(|| format!("renaming {} to {}", tmp.display(), dest.display()))?;
            Ok(verification)
        }
        Err(e) => {
            // Best effort: the mismatch is the error worth reporting.
            let _ = std::fs::remove_file(tmp);
            Err(e)
        }
    }
}

/// The message for a failed request: most often this machine is offline.
fn offline_help(dataset: &Dataset, err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!(
        "could not download {} from {}: {err}\n\
         If this machine is offline, use data already on disk instead: set VSC_DATA_DIR to a \
         folder that holds HAPT_RawData.zip (and, optionally, the UCI HAR zip). In this \
         project's checkout that folder is ../shared/data (CI uses it): \
         `export VSC_DATA_DIR=\"$PWD/../shared/data\"` from the workspace root. \
         Or copy the zips there from a machine with network access.",
        dataset.name,
        dataset.url
    )
}

/// Downloads `dataset.url` into `dest` (via `dest`'s `.part` sibling), showing progress.
pub fn download(
    agent: &ureq::Agent,
    dataset: &Dataset,
    dest: &Path,
) -> anyhow::Result<Verification> {
    let mut response = agent
        .get(dataset.url)
        .call()
        .map_err(|e| offline_help(dataset, e))?;
    let total = response.body().content_length().or(dataset.size_bytes);
    let bar = match total {
        Some(len) => ProgressBar::new(len),
        None => ProgressBar::new_spinner(),
    };
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(dataset.file_name.chars().take(40).collect::<String>());

    let tmp = part_path(dest);
    let file = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut out = BufWriter::new(file);
    let mut hasher = Sha256::new();
    let mut reader = response.body_mut().as_reader();
    let mut buf = vec![0u8; 1 << 16];
    let mut len = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                drop(out);
                let _ = std::fs::remove_file(&tmp);
                return Err(offline_help(dataset, e));
            }
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n])
            .with_context(|| format!("writing {}", tmp.display()))?;
        len += n as u64;
        bar.set_position(len);
    }
    out.into_inner()
        .map_err(|e| e.into_error())
        .and_then(|f| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    bar.finish_and_clear();
    install(dataset, &tmp, dest, len, &hex(&hasher.finalize()))
}

/// `DIR/.NAME.part`.
fn part_path(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    dest.with_file_name(format!(".{name}.part"))
}

fn default_dir() -> PathBuf {
    match std::env::var_os("VSC_DATA_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        // xtask lives in `<workspace>/xtask`.
        _ => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("..")
            .join("data"),
    }
}

fn report(dataset: &Dataset, path: &Path, verification: &Verification, what: &str) {
    match verification {
        Verification::Verified { size_bytes } => println!(
            "{}: {what} {} ({size_bytes} bytes, sha256 verified)",
            dataset.name,
            path.display()
        ),
        Verification::Unverified { size_bytes, sha256 } => println!(
            "{}: {what} {} ({size_bytes} bytes, sha256 {sha256}; no official checksum is \
             known, so it was not verified: record these to compare later downloads)",
            dataset.name,
            path.display()
        ),
    }
}

/// `cargo xtask data`.
pub fn run(args: &DataArgs) -> anyhow::Result<()> {
    let dir = args.dir.clone().unwrap_or_else(default_dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_connect(Some(Duration::from_secs(20)))
        .timeout_recv_body(Some(Duration::from_secs(120)))
        .build()
        .into();
    for dataset in &DATASETS {
        let dest = dir.join(dataset.file_name);
        if dest.exists() && !args.force {
            match verify_file(dataset, &dest) {
                Ok(v) => {
                    report(dataset, &dest, &v, "already present:");
                    continue;
                }
                Err(e) => println!("{e:#}; downloading it again"),
            }
        }
        println!("{}: downloading {}", dataset.name, dataset.url);
        let verification = download(&agent, dataset, &dest)?;
        report(dataset, &dest, &verification, "downloaded");
    }
    println!(
        "Data in {}. Point the project at it with `export VSC_DATA_DIR={}` or `--data {}`.",
        dir.display(),
        dir.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ABC_SHA256: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    fn known(sha256: &'static str, size: u64) -> Dataset {
        Dataset {
            name: "test set",
            url: "http://127.0.0.1:9/none.zip",
            file_name: "test.zip",
            size_bytes: Some(size),
            sha256: Some(sha256),
        }
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(sha256_of(&b"abc"[..]).unwrap(), (ABC_SHA256.to_owned(), 3));
        // Larger than one read buffer.
        let big = vec![7u8; (1 << 16) + 5];
        let (_, len) = sha256_of(&big[..]).unwrap();
        assert_eq!(len, big.len() as u64);
    }

    #[test]
    fn verify_local_file_match_mismatch_and_unknown() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.zip");
        std::fs::write(&path, b"abc").unwrap();
        assert_eq!(
            verify_file(&known(ABC_SHA256, 3), &path).unwrap(),
            Verification::Verified { size_bytes: 3 }
        );
        let wrong = "0".repeat(64);
        let wrong: &'static str = Box::leak(wrong.into_boxed_str());
        let err = verify_file(&known(wrong, 3), &path)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not match") && err.contains(ABC_SHA256),
            "{err}"
        );
        let err = verify_file(&known(ABC_SHA256, 4), &path)
            .unwrap_err()
            .to_string();
        assert!(err.contains("3 bytes") && err.contains("4 bytes"), "{err}");
        let unknown = Dataset {
            sha256: None,
            size_bytes: None,
            ..known(ABC_SHA256, 3)
        };
        assert_eq!(
            verify_file(&unknown, &path).unwrap(),
            Verification::Unverified {
                size_bytes: 3,
                sha256: ABC_SHA256.to_owned()
            }
        );
    }

    #[test]
    fn install_renames_only_verified_files() {
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("test.zip");
        let tmp = part_path(&dest);
        assert_eq!(tmp.file_name().unwrap(), ".test.zip.part");

        std::fs::write(&tmp, b"abd").unwrap();
        let (sha, len) = sha256_of(File::open(&tmp).unwrap()).unwrap();
        let err = install(&known(ABC_SHA256, 3), &tmp, &dest, len, &sha).unwrap_err();
        assert!(err.to_string().contains("does not match"), "{err}");
        assert!(
            !tmp.exists() && !dest.exists(),
            "a bad download is removed, never installed"
        );

        std::fs::write(&tmp, b"abc").unwrap();
        let (sha, len) = sha256_of(File::open(&tmp).unwrap()).unwrap();
        install(&known(ABC_SHA256, 3), &tmp, &dest, len, &sha).unwrap();
        assert!(!tmp.exists());
        assert_eq!(std::fs::read(&dest).unwrap(), b"abc");
    }

    #[test]
    fn unreachable_server_explains_vsc_data_dir() {
        // A local port nothing listens on: fails at once, no real network involved.
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(5)))
            .build()
            .into();
        let dir = tempfile::tempdir().unwrap();
        let dest = dir.path().join("test.zip");
        let err = download(&agent, &known(ABC_SHA256, 3), &dest)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("VSC_DATA_DIR") && err.contains("../shared/data"),
            "{err}"
        );
        assert!(!dest.exists() && !part_path(&dest).exists());
    }

    #[test]
    fn known_checksums_are_well_formed() {
        for d in DATASETS {
            if let Some(sha) = d.sha256 {
                assert_eq!(sha.len(), 64);
                assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
            }
            assert!(d.url.ends_with(d.file_name));
        }
    }
}
