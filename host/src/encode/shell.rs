//! Words for a POSIX shell (`nsw plan` prints a script to run): a word
//! comes out as it is if it is plain, else single-quoted, so whatever a
//! name holds the shell reads exactly that word.

/// One word for the shell.
pub fn word(word: &str) -> String {
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_alphanumeric() || "_.-+=,@/".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_words_are_quoted_when_needed() {
        assert_eq!(word("veth-pb"), "veth-pb");
        assert_eq!(word("a'b"), r"'a'\''b'");
        assert_eq!(word("$(x)"), "'$(x)'");
        assert_eq!(word(""), "''");
    }
}
