//! Encoders, one per language nsw writes for a reader: whatever a name
//! or a message holds, what nsw prints means what it says in that
//! language. The terminal ([`terminal`]) is the first; every other output
//! format gets its encoder here too.

pub mod diagram;
pub mod shell;
pub mod terminal;
pub mod xml;
