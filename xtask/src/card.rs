//! Model cards (`models/NAME.md`): the sections that several commands write
//! (`quantise`, `export-onnx`, `activity-head`) are replaced in place, so each command
//! can refresh its own section without regenerating the card.

/// `card` with the section under `heading` replaced by `section` (up to the next `## `
/// heading), or, without one, `section` inserted before `## Reproduce` (or appended).
pub fn with_section(card: &str, heading: &str, section: &str) -> String {
    let section = format!("{}\n\n", section.trim_end());
    let heading_at = |heading: &str| {
        let line = format!("\n{heading}\n");
        card.find(&line)
            .map(|i| i + 1)
            .or_else(|| card.starts_with(&line[1..]).then_some(0))
    };
    let (start, end) = match heading_at(heading) {
        Some(start) => {
            let rest = &card[start + heading.len()..];
            let end = rest
                .find("\n## ")
                .map_or(card.len(), |i| start + heading.len() + i + 1);
            (start, end)
        }
        None => {
            let at = heading_at("## Reproduce").unwrap_or(card.len());
            (at, at)
        }
    };
    let mut before = card[..start].to_string();
    if !before.is_empty() && !before.ends_with("\n\n") {
        before.push_str(if before.ends_with('\n') { "\n" } else { "\n\n" });
    }
    let after = &card[end..];
    let mut out = before + &section + after;
    if after.is_empty() {
        out.truncate(out.trim_end().len());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_or_inserted_before_reproduce() {
        let card = "# Card\n\n## Data\n\nx\n\n## Reproduce\n\n```sh\nq\n```\n";
        let with = with_section(card, "## Activity head", "## Activity head\n\nv1\n");
        assert_eq!(
            with,
            "# Card\n\n## Data\n\nx\n\n## Activity head\n\nv1\n\n## Reproduce\n\n```sh\nq\n```\n"
        );
        let again = with_section(&with, "## Activity head", "## Activity head\n\nv2");
        assert!(again.contains("v2") && !again.contains("v1"));
        assert_eq!(again.matches("## Activity head").count(), 1);
        assert!(again.ends_with("```\n"));
        let plain = with_section("# Card\n", "## Activity head", "## Activity head\n\nz");
        assert_eq!(plain, "# Card\n\n## Activity head\n\nz\n");
    }
}
