//! `nsw:lab/check`: checks for the report of `nsw test`.

use super::HostState;
use crate::imports::bindings::nsw::lab::check;

impl check::Host for HostState {
    async fn report(&mut self, name: String, passed: bool, detail: String) -> wasmtime::Result<()> {
        // A refusal (a quota, a string too long) ends the run: the call
        // returns nothing the script could check.
        self.lab.report_check(&name, passed, &detail).map_err(|e| wasmtime::Error::new(crate::error::QuotaExhausted(e.to_string())))
    }
}
