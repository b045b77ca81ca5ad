//! `annex initremote NAME KEY=VALUE...`: a new special remote (type=S3
//! or type=directory, encryption=none), made as `git annex initremote`
//! makes it (annex_special::initremote).

use std::process::ExitCode;

use annex_branch::logs::remote_config::RemoteConfig;
use anyhow::bail;
use clap::Args;

use crate::branchcmd::Here;

/// `annex initremote` arguments.
#[derive(Args)]
pub struct InitremoteArgs {
    /// The remote's name.
    name: String,
    /// Its settings: `type=S3` or `type=directory`, `encryption=none`, and
    /// the type's own (`bucket=`, `host=`, `chunk=`, `directory=`, ...).
    #[arg(value_name = "KEY=VALUE")]
    fields: Vec<String>,
}

/// `annex initremote`.
pub fn initremote(args: InitremoteArgs) -> anyhow::Result<ExitCode> {
    let here = Here::open_annex()?;
    let mut fields = RemoteConfig::default();
    for f in &args.fields {
        let Some((k, v)) = f.split_once('=') else {
            bail!("expected KEY=VALUE, not {f:?}");
        };
        fields.0.insert(k.to_owned(), v.to_owned());
    }
    print!("initremote {} ", args.name);
    let env = |v: &str| std::env::var(v).ok();
    let req = annex_special::initremote::Request {
        name: &args.name,
        fields,
        branch: &here.branch,
        work: &here.work,
        env: &env,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    match rt.block_on(annex_special::initremote::initremote(req)) {
        Ok(_) => {
            println!("ok");
            here.commit_at_end()?;
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            println!("failed");
            Err(e.into())
        }
    }
}
