//! How nsw talks to its user: `say!` to stderr, `show!` to stdout. Neither
//! ever panics: a closed pipe (`nsw run ... | head`) stops the run instead
//! (see [`crate::stop::output_closed`]).

/// Print a line of nsw's own to stderr.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        $crate::progress::suspend(|| $crate::stop::note_write(writeln!(std::io::stderr(), "{line}")));
    }};
}
pub(crate) use say;

/// Print a line to stdout (listings, JSON).
macro_rules! show {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let line = format!($($arg)*);
        $crate::progress::suspend(|| $crate::stop::note_write(writeln!(std::io::stdout(), "{line}")));
    }};
}
pub(crate) use show;
