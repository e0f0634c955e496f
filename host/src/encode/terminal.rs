//! Text for a terminal: what a guest (or a journal, a program's argv, a
//! path) says is shown without any character that could move the cursor,
//! recolour the screen, reorder the line or fake a line of nsw's own.

use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Whether `c` may be shown: not a control character (C0, C1 and DEL:
/// category Cc), not a format character (Cf: bidi overrides and isolates,
/// zero-width spaces and joiners, the BOM), not a line or paragraph
/// separator (Zl, Zp). Newlines and tabs are what is left of layout.
pub fn is_showable(c: char) -> bool {
    if c == '\n' || c == '\t' {
        return true;
    }
    !matches!(
        c.general_category(),
        GeneralCategory::Control | GeneralCategory::Format | GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator
    )
}

/// Keep what may be shown (see [`is_showable`]).
pub fn sanitize(text: &str) -> String {
    text.chars().filter(|&c| is_showable(c)).collect()
}

/// A guest's text on one line: newlines, tabs and every character that may
/// not be shown, escaped (`\n`, `\u{202e}`).
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if is_showable(c) => out.push(c),
            c => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
        }
    }
    out
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_escapes_keeps_text() {
        assert_eq!(sanitize("\u{1b}[2Jhello\u{1b}]0;title\u{7}\n\tok é"), "[2Jhello]0;title\n\tok é");
        assert_eq!(sanitize("a\u{9b}31mb\rc\u{7f}"), "a31mbc");
    }

    #[test]
    fn strips_format_and_separator_characters() {
        for c in ['\u{202a}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200b}', '\u{200d}', '\u{feff}', '\u{85}', '\u{2028}', '\u{2029}'] {
            assert_eq!(sanitize(&format!("a{c}b")), "ab", "U+{:04X}", c as u32);
        }
        assert_eq!(sanitize("日本 ✓"), "日本 ✓");
    }

    #[test]
    fn one_line_escapes_what_could_fake_a_line() {
        assert_eq!(one_line("oops\nnsw: lab x is up"), "oops\\nnsw: lab x is up");
        assert_eq!(one_line("a\u{202e}b"), "a\\u{202e}b");
        assert_eq!(one_line("é"), "é");
    }
}
