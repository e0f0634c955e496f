//! The release `nsw` is the shipped one: the crash tests' and benchmarks'
//! hooks live only in `nsw-testing`.

#[test]
fn the_release_binary_reads_no_test_variable() {
    let release = std::fs::read(nsw_tests::nsw_bin()).unwrap();
    let testing = std::fs::read(nsw_tests::nsw_testing_bin()).unwrap();
    let has = |bytes: &[u8], word: &str| bytes.windows(word.len()).any(|w| w == word.as_bytes());
    for variable in ["NSW_TIMINGS", "NSW_TEST_KILL_AT", "NSW_TEST_ESCAPE", "NSW_NO_BOUNDARY"] {
        assert!(!has(&release, variable), "the release nsw holds {variable}");
        // The check can fail: the testing build has them all.
        assert!(has(&testing, variable), "nsw-testing lacks {variable}");
    }
}
