//! The limit flags of `nsw run`, `test` and `plan`, made from the policy's
//! one table of limits ([`crate::policy::LIMITS`]) rather than written out
//! flag by flag.

use clap::{Arg, ArgMatches, Command, FromArgMatches};

use crate::policy::{LIMITS, Limits};

/// The limits a command line asked for (the defaults for what it did not).
#[derive(Debug, Clone)]
pub struct LimitArgs(pub Limits);

impl FromArgMatches for LimitArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut limits = LimitArgs(Limits::default());
        limits.update_from_arg_matches(matches)?;
        Ok(limits)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for limit in LIMITS {
            if let Some(value) = matches.get_one::<u64>(limit.flag) {
                limit.apply(&mut self.0, *value).map_err(|e| clap::Error::raw(clap::error::ErrorKind::ValueValidation, format!("{e}\n")))?;
            }
        }
        Ok(())
    }
}

impl clap::Args for LimitArgs {
    fn augment_args(command: Command) -> Command {
        LIMITS.iter().fold(command.next_help_heading("Limits"), |command, limit| {
            let help = format!("{} [default: {}]", capitalised(limit.what), (limit.shown)(limit.default));
            command.arg(
                Arg::new(limit.flag)
                    .long(limit.flag)
                    .aliases(limit.aliases.iter().copied())
                    .value_name(limit.unit)
                    .value_parser(clap::value_parser!(u64))
                    .help(help),
            )
        })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|c| c.to_uppercase().chain(chars).collect()).unwrap_or_default()
}
