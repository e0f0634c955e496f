//! `nsw graph LAB [--format dot|mermaid|json]`: a picture of the lab.

use clap::{Args, ValueEnum};

use super::{CommandResult, Status, show};

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Graphviz (`nsw graph pbj | dot -Tsvg > pbj.svg`).
    Dot,
    /// Mermaid: GitHub renders it in markdown.
    Mermaid,
    Json,
}

#[derive(Args)]
pub struct GraphArgs {
    lab: String,
    #[arg(long, value_enum, default_value = "dot")]
    format: Format,
    /// A lab across machines: drawn whole, its links between machines too.
    #[command(flatten)]
    pub(crate) store: super::agent::StoreArgs,
}

pub async fn exec(args: GraphArgs) -> CommandResult {
    let view = super::show::read_any(&args.lab, &args.store).await?;
    let graph = crate::graph::build(&view);
    match args.format {
        Format::Dot => show!("{}", crate::graph::dot(&view.lab, &graph).trim_end()),
        Format::Mermaid => show!("{}", crate::graph::mermaid(&graph).trim_end()),
        Format::Json => show!("{}", serde_json::to_string_pretty(&graph)?),
    }
    Ok(Status::Success)
}
