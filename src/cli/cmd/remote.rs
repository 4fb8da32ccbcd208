//! `snap remote add|list|remove`: the repository's remotes (`remotes.toml`
//! beside its config; URLs only, never a credential).

use anyhow::Result;

use crate::cli::render;
use crate::cli::Ctx;

/// Manage remotes: repositories on object storage to push to and pull from.
///
/// URLs: s3://BUCKET/PREFIX (AWS S3, or any S3-compatible server with
/// AWS_ENDPOINT_URL and AWS_ALLOW_HTTP=true for plain http), or
/// file:///ABSOLUTE/PATH. Credentials come from the environment
/// (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION) and are never
/// stored or printed.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, clap::Subcommand)]
enum Action {
    /// Remember URL as remote NAME (nothing is sent until `snap push`).
    Add { name: String, url: String },
    /// List remotes.
    List {
        /// Output JSON.
        #[arg(long)]
        json: bool,
    },
    /// Forget remote NAME and its local cache (the remote is not touched).
    Remove { name: String },
}

#[derive(serde::Serialize)]
struct RemoteJson {
    name: String,
    url: String,
}

pub fn run(ctx: &Ctx, args: Args) -> Result<u8> {
    let (repo, _) = ctx.open()?;
    match args.action {
        Action::Add { name, url } => {
            let url = repo.remote_add(&name, &url)?;
            println!("added remote {name}: {url}");
        }
        Action::List { json } => {
            let all = repo.remotes()?;
            if json {
                let v: Vec<RemoteJson> = all
                    .into_iter()
                    .map(|(name, url)| RemoteJson {
                        name,
                        url: url.to_string(),
                    })
                    .collect();
                return render::print_json(&v).map(|_| 0);
            }
            if all.is_empty() {
                println!("no remotes; add one with `snap remote add NAME URL`");
            }
            for (name, url) in all {
                println!("{name}\t{url}");
            }
        }
        Action::Remove { name } => {
            repo.remote_remove(&name)?;
            println!("removed remote {name}");
        }
    }
    Ok(0)
}
