//! Does nothing: what `nsw run` costs before a script does any work
//! (load from the compiled cache, instantiate, call `run`).

struct Noop;

impl nsw_sdk::Guest for Noop {
    fn run(_args: Vec<String>) -> Result<(), String> {
        Ok(())
    }
}

nsw_sdk::export!(Noop);
