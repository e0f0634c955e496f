//! nsw: Linux network labs built by sandboxed WebAssembly scripts.
//!
//! The flow of one run: the CLI loads a component ([`runtime`]), the guest
//! calls the WIT imports ([`imports`], one module per interface), which
//! call the [`lab`]; the lab asks the [`policy`], records the object in its
//! [`journal`], then has a [`backend`] create it. [`teardown`] removes what
//! a journal owns.

pub mod backend;
pub mod cli;
pub mod error;
pub mod exec;
pub mod imports;
pub mod inspect;
pub mod journal;
pub mod lab;
pub mod policy;
pub mod runtime;
pub mod teardown;
