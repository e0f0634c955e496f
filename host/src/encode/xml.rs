//! Text for XML 1.0 (the JUnit report): only the characters XML 1.0
//! allows, every other one written out as `\u{...}`. The XML writer
//! (quick-junit) escapes markup; what it cannot escape is a character XML
//! forbids altogether, which would make the file no XML at all.

/// Whether XML 1.0 allows `c` in a document.
pub fn allowed(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..='\u{10FFFF}')
}

/// `text` with every character XML 1.0 forbids written out.
pub fn text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if allowed(c) {
            out.push(c);
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forbidden_characters_are_written_out() {
        assert_eq!(text("a\u{FFFF}b\u{1}c\u{FFFE}"), "a\\u{ffff}b\\u{1}c\\u{fffe}");
        assert_eq!(text("ok é ✓ \t\n"), "ok é ✓ \t\n");
    }
}
