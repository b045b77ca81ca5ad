//! `annex examinekey`.

use std::process::ExitCode;

use annex_protocol::Key;
use clap::Args;

#[derive(Args)]
pub struct ExamineArgs {
    /// The key, such as SHA256E-s1048576--d0e1...c2.bin
    key: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ExamineArgs) -> anyhow::Result<ExitCode> {
    let key = Key::parse(&args.key)
        .map_err(|e| anyhow::anyhow!("{:?} is not a valid key: {e}", args.key))?;
    let file = key.to_file_name();
    let mixed = format!(".git/annex/objects/{}{file}/{file}", key.hash_dir_mixed());
    let lower = format!("annex/objects/{}{file}/{file}", key.hash_dir_lower());
    if args.json {
        let v = serde_json::json!({
            "key": key.as_str(),
            "backend": key.backend(),
            "bytesize": key.size().map(|s| s.to_string()),
            "mtime": key.mtime(),
            "chunksize": key.chunk_size(),
            "chunknumber": key.chunk_num(),
            "keyname": key.name(),
            "hashdirmixed": key.hash_dir_mixed(),
            "hashdirlower": key.hash_dir_lower(),
            "objectpath": mixed,
            "objectpath-bare": lower,
        });
        println!("{v}");
    } else {
        println!("key:          {key}");
        println!("backend:      {}", key.backend());
        if let Some(s) = key.size() {
            println!("size:         {s}");
        }
        if let Some(m) = key.mtime() {
            println!("mtime:        {m}");
        }
        if let (Some(s), Some(n)) = (key.chunk_size(), key.chunk_num()) {
            println!("chunk:        {n} of size {s}");
        }
        println!("name:         {}", key.name());
        println!("object:       {mixed}");
        println!("object, bare: {lower}");
    }
    Ok(ExitCode::SUCCESS)
}
