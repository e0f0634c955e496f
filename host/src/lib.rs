//! nsw: Linux network labs built by sandboxed WebAssembly scripts.
//!
//! The flow of one run: the [`cli`] parses and hands over to a command
//! ([`commands`]); `run`, `test` and `plan` go through one pipeline
//! ([`build`]): the script is checked and loaded ([`runtime`]), a
//! [`session`] holds the lab, and the script runs ([`script`]) against the
//! WIT imports ([`imports`], one module per interface), which call the
//! [`lab`]; the lab asks the [`policy`], records the object in its
//! [`journal`], then has a [`backend`] create it. [`teardown`] removes what
//! a journal owns. When root runs a contained lab, all of that happens
//! behind the [`boundary`], in a user namespace with no privilege over the
//! machine. ARCHITECTURE.md (in the repository) is the map: the layers and
//! what each module may use.

pub mod access;
pub mod backend;
pub mod boundary;
pub mod build;
pub mod cli;
pub mod cluster;
pub mod commands;
pub mod encode;
pub mod error;
pub mod front;
pub mod graph;
pub mod imports;
pub mod inspect;
pub mod journal;
pub mod lab;
pub mod layout;
pub mod naming;
pub mod places;
pub mod policy;
pub mod progress;
pub mod relay;
pub mod rootless;
pub mod runtime;
pub mod script;
pub mod session;
pub mod shared_settings;
pub mod spread;
pub mod sharing;
pub mod show;
pub mod stop;
pub mod teardown;
pub mod tell;
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
