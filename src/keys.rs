//! `kairos keys`: API keys for the HTTP API. Only the catalog is opened, so this works beside a
//! running server.

use std::process::ExitCode;

use anyhow::{Context, Result};
use kairos_store::Catalog;

use crate::cli::{Global, KeysCommand};

pub async fn run(g: &Global, command: KeysCommand) -> Result<ExitCode> {
    fs_err::create_dir_all(&g.data)?;
    let catalog = Catalog::open(&g.data.join("catalog.db")).await?;
    match command {
        KeysCommand::Create { name } => {
            let (key, secret) = catalog.create_key(&name).await?;
            eprintln!(
                "Created API key {:?} (id {}). It is shown once, now; only its hash is kept:",
                key.name, key.id
            );
            println!("{secret}");
            eprintln!("Use it as `Authorization: Bearer {}…`.", key.prefix);
        }
        KeysCommand::List { json } => {
            let keys = catalog.keys().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else if keys.is_empty() {
                println!("No API keys. Create one with `kairos keys create --name NAME`.");
            } else {
                println!(
                    "{:<24} {:<18} {:<22} {:<22} status",
                    "name", "key", "created", "last used"
                );
                for k in keys {
                    let day = |t: Option<chrono::DateTime<chrono::Utc>>| {
                        t.map_or("never".to_string(), |t| {
                            t.format("%Y-%m-%d %H:%M").to_string()
                        })
                    };
                    println!(
                        "{:<24} {:<18} {:<22} {:<22} {}",
                        k.name,
                        format!("{}…", k.prefix),
                        day(Some(k.created_at)),
                        day(k.last_used_at),
                        if k.revoked_at.is_some() {
                            "revoked"
                        } else {
                            "active"
                        }
                    );
                }
            }
        }
        KeysCommand::Revoke { key } => {
            let key = catalog
                .revoke_key(&key)
                .await
                .with_context(|| format!("revoking {key:?}"))?;
            println!("Revoked API key {:?} ({}…).", key.name, key.prefix);
        }
    }
    catalog.close().await;
    Ok(ExitCode::SUCCESS)
}
