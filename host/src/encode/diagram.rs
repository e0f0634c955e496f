//! Identifiers and labels for Graphviz dot and Mermaid (`nsw graph`):
//! identifiers are injective (two names never meet in one box), labels
//! say exactly the name in either language.

/// An identifier dot and Mermaid both take (letters, digits, `_`), one for
/// every distinct `prefix` and `parts`: letters and digits stand for
/// themselves, every other character is `_` and its code in hex (so a `_`
/// of the encoding is always followed by a hex digit), and parts are
/// joined by `__`, which no encoded part holds.
pub fn ident(prefix: &str, parts: &[&str]) -> String {
    let mut id = String::from(prefix);
    for part in parts {
        id.push_str("__");
        for c in part.chars() {
            if c.is_ascii_alphanumeric() {
                id.push(c);
            } else {
                id.push_str(&format!("_{:x}", c as u32));
                // A code is ended by the next character that is no hex
                // digit: mark the end where one follows.
                id.push('g');
            }
        }
    }
    id
}

/// The inside of a dot string (`"..."`): `\` and `"` escaped, so that no
/// escape of dot's (`\N`, `\l`) is taken from a name.
pub fn dot_string(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The inside of a Mermaid label (`"..."`): entity codes for what Mermaid
/// or the HTML it makes would read (`#`, `"`, `<`, `>`, `&`).
pub fn mermaid_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '#' => out.push_str("#35;"),
            '"' => out.push_str("#quot;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_never_meet() {
        assert_ne!(ident("n", &["web.1"]), ident("n", &["web_1"]));
        assert_ne!(ident("b", &["a", "b_c"]), ident("b", &["a_b", "c"]));
        assert_ne!(ident("n", &["a.1"]), ident("n", &["a_2e1"]));
        assert!(ident("n", &["x-y.z"]).chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }

    #[test]
    fn labels_say_the_name() {
        assert_eq!(dot_string(r#"a"b\N"#), r#"a\"b\\N"#);
        assert_eq!(mermaid_text("a#quot;<b>"), "a#35;quot;#lt;b#gt;");
    }

    /// Any text, or (often, so that near misses are tried) a short one of
    /// the characters the encoding itself writes.
    fn part() -> impl proptest::strategy::Strategy<Value = String> {
        proptest::prop_oneof![".*", "[a_.1g2e]{0,4}"]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2048, ..Default::default() })]
        /// Two different names (of one part or several, any characters)
        /// never share an identifier, and every identifier is one dot and
        /// Mermaid take as it is.
        #[test]
        fn identifiers_are_injective(a in proptest::collection::vec(part(), 1..3), b in proptest::collection::vec(part(), 1..3)) {
            let (parts_a, parts_b): (Vec<&str>, Vec<&str>) = (a.iter().map(String::as_str).collect(), b.iter().map(String::as_str).collect());
            let (id_a, id_b) = (ident("n", &parts_a), ident("n", &parts_b));
            proptest::prop_assert!(id_a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "{id_a}");
            proptest::prop_assert_eq!(a == b, id_a == id_b, "{:?} and {:?} gave {} and {}", a, b, id_a, id_b);
        }
    }
}
