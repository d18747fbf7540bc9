//! `vsc report`: one self-contained HTML page from run directories — every PNG inlined as
//! a base64 data URI, `metrics.json` rendered as tables, `config.toml` quoted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Errors building the report.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("reading {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not valid JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not a directory")]
    NotADir { path: PathBuf },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ReportError + '_ {
    move |source| ReportError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Standard base64 (RFC 4648, with padding).
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escape text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn fmt_number(v: &serde_json::Number) -> String {
    match v.as_f64() {
        Some(f) if v.is_f64() => {
            if f != 0.0 && (f.abs() < 1e-3 || f.abs() >= 1e6) {
                format!("{f:.4e}")
            } else {
                format!("{f:.4}")
            }
        }
        _ => v.to_string(),
    }
}

/// Longest numeric array shown in full; longer ones are cut with a count.
const MAX_INLINE_VALUES: usize = 64;

fn render_value(out: &mut String, v: &Value, depth: usize) {
    match v {
        Value::Null => out.push_str("<i>null</i>"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&fmt_number(n)),
        Value::String(s) => out.push_str(&escape(s)),
        Value::Array(items) => {
            let is_matrix = !items.is_empty()
                && items.iter().all(|r| {
                    r.as_array()
                        .is_some_and(|a| a.iter().all(|x| x.is_number() || x.is_null()))
                });
            if is_matrix && items.len() <= 30 && items[0].as_array().map_or(0, Vec::len) <= 30 {
                out.push_str("<table class=\"matrix\">");
                for row in items {
                    out.push_str("<tr>");
                    for x in row.as_array().into_iter().flatten() {
                        out.push_str("<td>");
                        render_value(out, x, depth + 1);
                        out.push_str("</td>");
                    }
                    out.push_str("</tr>");
                }
                out.push_str("</table>");
            } else if items.iter().all(|x| !x.is_object() && !x.is_array()) {
                let shown: Vec<String> = items
                    .iter()
                    .take(MAX_INLINE_VALUES)
                    .map(|x| {
                        let mut s = String::new();
                        render_value(&mut s, x, depth + 1);
                        s
                    })
                    .collect();
                out.push_str(&shown.join(", "));
                if items.len() > MAX_INLINE_VALUES {
                    let _ = write!(out, " … ({} values)", items.len());
                }
            } else if items.iter().all(Value::is_object) {
                render_records(out, items, depth);
            } else {
                let _ = write!(out, "<i>{} items</i>", items.len());
            }
        }
        Value::Object(map) => {
            out.push_str("<table>");
            for (k, x) in map {
                let _ = write!(out, "<tr><th>{}</th><td>", escape(k));
                render_value(out, x, depth + 1);
                out.push_str("</td></tr>");
            }
            out.push_str("</table>");
        }
    }
}

/// An array of objects as one table: a column per scalar key of the first record.
fn render_records(out: &mut String, items: &[Value], depth: usize) {
    let Some(first) = items[0].as_object() else {
        return;
    };
    let keys: Vec<&String> = first.keys().collect();
    out.push_str("<table><tr>");
    for k in &keys {
        let _ = write!(out, "<th>{}</th>", escape(k));
    }
    out.push_str("</tr>");
    for item in items {
        out.push_str("<tr>");
        for k in &keys {
            out.push_str("<td>");
            if let Some(x) = item.get(k.as_str()) {
                render_value(out, x, depth + 1);
            }
            out.push_str("</td>");
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
}

const STYLE: &str = "body{font-family:sans-serif;max-width:1200px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:.3em 0}th,td{border:1px solid #ccc;padding:2px 6px;\
text-align:left;vertical-align:top;font-size:13px}th{background:#f3f3f3}\
table.matrix td{text-align:right;font-family:monospace}figure{display:inline-block;margin:1em}\
figcaption{font-size:13px;color:#555}img{max-width:100%}pre{background:#f7f7f7;padding:.6em;\
font-size:12px;overflow:auto}";

/// Files of `dir` with extension `ext`, sorted by name.
fn files_with_ext(dir: &Path, ext: &str) -> Result<Vec<PathBuf>, ReportError> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension().is_some_and(|e| e == ext) && !p.to_string_lossy().ends_with(".tmp.png")
        })
        .collect();
    v.sort();
    Ok(v)
}

/// The HTML of one run directory's section.
fn run_section(dir: &Path) -> Result<String, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NotADir {
            path: dir.to_path_buf(),
        });
    }
    let mut out = String::new();
    let _ = write!(out, "<h2>{}</h2>", escape(&dir.display().to_string()));
    let metrics_path = dir.join("metrics.json");
    let metrics: Option<Value> = if metrics_path.exists() {
        let text = std::fs::read_to_string(&metrics_path).map_err(io(&metrics_path))?;
        Some(
            serde_json::from_str(&text).map_err(|source| ReportError::Json {
                path: metrics_path.clone(),
                source,
            })?,
        )
    } else {
        None
    };
    // Captions: metrics.json may carry {"figures": {"file.png": "caption"}}.
    let captions = metrics
        .as_ref()
        .and_then(|m| m.get("figures"))
        .and_then(Value::as_object)
        .cloned();
    for png in files_with_ext(dir, "png")? {
        let bytes = std::fs::read(&png).map_err(io(&png))?;
        let name = png
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let caption = captions
            .as_ref()
            .and_then(|c| c.get(&name))
            .and_then(Value::as_str)
            .map_or_else(|| name.clone(), |c| format!("{c} ({name})"));
        let _ = write!(
            out,
            "<figure><img alt=\"{alt}\" src=\"data:image/png;base64,{data}\"><figcaption>{alt}</figcaption></figure>",
            alt = escape(&caption),
            data = base64(&bytes)
        );
    }
    if let Some(m) = &metrics {
        out.push_str("<h3>metrics.json</h3>");
        let mut trimmed = m.clone();
        if let Some(obj) = trimmed.as_object_mut() {
            obj.remove("figures");
        }
        render_value(&mut out, &trimmed, 0);
    }
    let config = dir.join("config.toml");
    if config.exists() {
        let text = std::fs::read_to_string(&config).map_err(io(&config))?;
        let _ = write!(out, "<h3>config.toml</h3><pre>{}</pre>", escape(&text));
    }
    Ok(out)
}

/// Build the page for `run_dirs` (in order) and return it.
pub fn render_report(title: &str, run_dirs: &[PathBuf]) -> Result<String, ReportError> {
    let mut html = format!(
        "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head><body><h1>{t}</h1>",
        t = escape(title)
    );
    for dir in run_dirs {
        html.push_str(&run_section(dir)?);
    }
    html.push_str("</body></html>\n");
    Ok(html)
}

/// Write the page to `out` atomically (temp file + rename).
pub fn write_report(title: &str, run_dirs: &[PathBuf], out: &Path) -> Result<(), ReportError> {
    let html = render_report(title, run_dirs)?;
    let tmp = out.with_extension("html.tmp");
    std::fs::write(&tmp, html).map_err(io(&tmp))?;
    std::fs::rename(&tmp, out).map_err(io(out))
}
