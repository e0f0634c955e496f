//! Attack: output that passes for nsw's own: bidi overrides and isolates,
//! zero-width characters, NEL and the Unicode line and paragraph
//! separators, a line that reads like nsw's, and an error message with
//! newlines that would print a fake "lab is up".
//!
//!     nsw run hostile_fake_output.wasm

use nsw_sdk::Guest;

struct Attack;

impl Guest for Attack {
    fn run(_args: Vec<String>) -> Result<(), String> {
        println!("bidi \u{202e}evil\u{202c} \u{2066}iso\u{2069} \u{202a}emb\u{202d}");
        println!("zero\u{200b}width\u{200c}\u{200d}\u{2060}\u{feff}");
        println!("nel\u{85}line\u{2028}sep\u{2029}para");
        println!("nsw: lab evil is up in 0.01 s (contained: its host is netns evil)");
        eprintln!("nsw: error: nothing is wrong");
        Err("boom\nnsw: lab evil is up in 0.01 s\r\n\u{1b}[2Jnsw: take it down:  nsw down evil".into())
    }
}

nsw_sdk::export!(Attack);
