//! Reading the end of a job log: the lines that explain a failure, cleaned and with
//! token-like strings redacted before they can reach Discord.
//!
//! A job log is plain text, one `2020-01-20T17:42:40.1234567Z <text>` line per output
//! line; each step opens with a `##[group]…` line (`##[group]Run npm run build` for a
//! `run:` step) and failures are marked `##[error]…`. The step's display name is not
//! always in its group line (a named `run:` step shows its command), so the step is
//! located when it can be and the whole log is used otherwise; either way the tail ends
//! at the last `##[error]` line, because the cleanup steps after it explain nothing.

/// Up to `max_lines` lines ending at the failure: of the section of `step_name` when its
/// group line can be found, else of the whole log. `truncated` says that the text starts
/// mid-log (only the end was read), so its first line may be partial.
pub(crate) fn tail(
    text: &str,
    step_name: Option<&str>,
    max_lines: usize,
    truncated: bool,
) -> Vec<String> {
    let mut lines: Vec<&str> = text.lines().collect();
    if truncated && !lines.is_empty() {
        lines.remove(0);
    }
    let lines: Vec<String> = lines.into_iter().map(clean).collect();

    let start = step_name
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .and_then(|name| {
            let name = name.to_lowercase();
            lines.iter().rposition(|line| {
                line.strip_prefix("##[group]")
                    .is_some_and(|title| title.to_lowercase().contains(&name))
            })
        })
        .unwrap_or(0);
    let section = &lines[start..];
    let end = section
        .iter()
        .rposition(|line| line.starts_with("##[error]"))
        .map_or(section.len(), |i| i + 1);
    let section = &section[..end];
    section[section.len().saturating_sub(max_lines)..]
        .iter()
        .filter(|line| !line.trim().is_empty())
        .map(|line| redact_tokens(line))
        .collect()
}

/// Drops the timestamp prefix, a byte-order mark and ANSI colour codes.
fn clean(line: &str) -> String {
    let line = line.trim_start_matches('\u{feff}').trim_end_matches('\r');
    let line = match line.split_once(' ') {
        Some((stamp, rest)) if chrono::DateTime::parse_from_rfc3339(stamp).is_ok() => rest,
        _ => line,
    };
    strip_ansi(line)
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            // CSI: parameters, then one final byte in '@'..='~'.
            for c in chars.by_ref() {
                if ('@'..='~').contains(&c) {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// GitHub token prefixes (classic, OAuth, user-to-server, server-to-server, refresh,
/// fine-grained).
const TOKEN_PREFIXES: [&str; 6] = ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"];

/// Replaces token-like words with `[REDACTED]`: GitHub tokens, AWS access key ids, the
/// value after `Bearer`/`token`, and long random-looking strings (40+ characters mixing
/// letters and digits, but not a hex commit SHA, which diagnosis needs).
pub(crate) fn redact_tokens(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut redact_next = false;
    let mut rest = line;
    while !rest.is_empty() {
        let word_len = rest.find(|c: char| !is_token_char(c)).unwrap_or(rest.len());
        if word_len == 0 {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        }
        let word = &rest[..word_len];
        if redact_next || looks_like_token(word) {
            out.push_str("[REDACTED]");
        } else {
            out.push_str(word);
        }
        redact_next = word.eq_ignore_ascii_case("bearer") || word.eq_ignore_ascii_case("token");
        rest = &rest[word_len..];
        // `token: x` and `token=x` keep the flag across the separator.
        if redact_next {
            let sep = rest.len() - rest.trim_start_matches([' ', ':', '=', '"', '\'']).len();
            out.push_str(&rest[..sep]);
            rest = &rest[sep..];
        }
    }
    out
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/' | '.')
}

fn looks_like_token(word: &str) -> bool {
    if TOKEN_PREFIXES
        .iter()
        .any(|p| word.starts_with(p) && word.len() > p.len() + 8)
    {
        return true;
    }
    let aws_key = word.len() == 20
        && (word.starts_with("AKIA") || word.starts_with("ASIA"))
        && word
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    let random = word.len() >= 40
        && !word.contains('/')
        && !word.contains('.')
        && word.bytes().any(|b| b.is_ascii_digit())
        && word.bytes().any(|b| b.is_ascii_alphabetic())
        && !word.bytes().all(|b| b.is_ascii_hexdigit());
    aws_key || random
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\u{feff}2020-01-20T17:42:40.0000000Z ##[group]Run actions/checkout@v4
2020-01-20T17:42:41.0000000Z Syncing repository
2020-01-20T17:42:42.0000000Z ##[endgroup]
2020-01-20T17:42:43.0000000Z ##[group]Run npm run build
2020-01-20T17:42:44.0000000Z \u{1b}[31mnpm ERR!\u{1b}[0m missing script: build
2020-01-20T17:42:45.0000000Z ##[error]Process completed with exit code 1.
2020-01-20T17:42:46.0000000Z ##[group]Post job cleanup.
2020-01-20T17:42:47.0000000Z Cleaning up orphan processes
";

    #[test]
    fn tail_ends_at_the_error_within_the_step() {
        let lines = tail(LOG, Some("npm run build"), 20, false);
        assert_eq!(
            lines,
            [
                "##[group]Run npm run build",
                "npm ERR! missing script: build",
                "##[error]Process completed with exit code 1."
            ]
        );
        assert_eq!(tail(LOG, Some("npm run build"), 1, false).len(), 1);
    }

    #[test]
    fn an_unknown_step_uses_the_whole_log() {
        let lines = tail(LOG, Some("Deploy"), 20, false);
        assert_eq!(lines.first().unwrap(), "##[group]Run actions/checkout@v4");
        assert_eq!(
            lines.last().unwrap(),
            "##[error]Process completed with exit code 1."
        );
        assert_eq!(tail(LOG, None, 20, true)[0], "Syncing repository");
    }

    #[test]
    fn token_like_strings_are_redacted_but_shas_are_kept() {
        let line = "push ghp_abcdefghijklmnopqrstuvwxyz0123456789 with Authorization: Bearer abc.def \
                    key AKIAABCDEFGHIJKLMNOP token=s3cr3t sha 4b825dc642cb6eb9a060e54bf8d69288fbee4904 \
                    blob Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MGFiY2RlZmdoaWprbG1ub3A";
        assert_eq!(
            redact_tokens(line),
            "push [REDACTED] with Authorization: Bearer [REDACTED] key [REDACTED] \
             token=[REDACTED] sha 4b825dc642cb6eb9a060e54bf8d69288fbee4904 blob [REDACTED]"
        );
        assert_eq!(redact_tokens("plain words, ok"), "plain words, ok");
    }
}
