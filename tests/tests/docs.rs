//! The code in the docs is the code that is built and tested: every
//! fenced block marked `<!-- file: PATH -->` must be that file, byte for
//! byte.

#[test]
fn code_in_the_docs_is_the_tested_code() {
    let root = nsw_tests::workspace();
    let mut checked = 0;
    for doc in ["README.md", "docs/languages.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find("<!-- file: ") {
            rest = &rest[at + "<!-- file: ".len()..];
            let path = &rest[..rest.find(" -->").unwrap()];
            let fence = rest.find("```").unwrap();
            let body_start = fence + rest[fence..].find('\n').unwrap() + 1;
            let body_end = body_start + rest[body_start..].find("```").unwrap();
            let shown = &rest[body_start..body_end];
            let real = std::fs::read_to_string(root.join(path)).unwrap_or_else(|e| panic!("{doc} shows {path}: {e}"));
            assert_eq!(shown, real, "{doc} shows an old copy of {path}");
            checked += 1;
            rest = &rest[body_end..];
        }
    }
    assert!(checked >= 5, "only {checked} code blocks were checked");
}
