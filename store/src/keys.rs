//! API keys: created and revoked by the operator (`kairos keys`), checked by the server on every
//! write. Only a SHA-256 of each key is stored; the key itself is shown once, at creation.

use chrono::Utc;
use sha2::{Digest, Sha256};
use sqlx::Row;

use crate::catalog::{Catalog, parse_time};
use crate::error::{Error, Result};
use crate::listing::parse_optional_time;
use crate::records::ApiKey;

/// What every key starts with, so that a leaked one is recognisable (and greppable) as ours.
pub const KEY_PREFIX: &str = "kairos_";

/// SHA-256 of a key, hex: what the catalog stores and looks keys up by.
pub fn key_hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

fn key_from_row(r: &sqlx::sqlite::SqliteRow, path: &std::path::Path) -> Result<ApiKey> {
    Ok(ApiKey {
        id: r.get("id"),
        name: r.get("name"),
        prefix: r.get("prefix"),
        created_at: parse_time(&r.get::<String, _>("created_at"), path)?,
        last_used_at: parse_optional_time(r.get("last_used_at"), path)?,
        revoked_at: parse_optional_time(r.get("revoked_at"), path)?,
    })
}

impl Catalog {
    /// Creates a key named `name`; returns it with its secret, which is never shown again.
    pub async fn create_key(&self, name: &str) -> Result<(ApiKey, String)> {
        let name = name.trim();
        if name.is_empty() {
            return Err(Error::InvalidInput {
                field: "name",
                message: "a key needs a name (who or what uses it)".into(),
            });
        }
        if self
            .keys()
            .await?
            .iter()
            .any(|k| k.name == name && k.revoked_at.is_none())
        {
            return Err(Error::InvalidInput {
                field: "name",
                message: format!(
                    "a key named {name:?} exists: revoke it first or choose another name"
                ),
            });
        }
        // Two v4 UUIDs: 244 bits from the operating system's generator.
        let secret = format!(
            "{KEY_PREFIX}{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let key = ApiKey {
            id: uuid::Uuid::now_v7().to_string(),
            name: name.to_string(),
            prefix: secret[..KEY_PREFIX.len() + 8].to_string(),
            created_at: Utc::now(),
            last_used_at: None,
            revoked_at: None,
        };
        sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, hash, created_at) VALUES ($1,$2,$3,$4,$5)",
        )
        .bind(&key.id)
        .bind(&key.name)
        .bind(&key.prefix)
        .bind(key_hash(&secret))
        .bind(key.created_at.to_rfc3339())
        .execute(&self.pool)
        .await
        .map_err(self.err())?;
        Ok((key, secret))
    }

    /// Every key, revoked ones included, oldest first.
    pub async fn keys(&self) -> Result<Vec<ApiKey>> {
        let rows = sqlx::query(
            "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err())?;
        rows.iter().map(|r| key_from_row(r, &self.path)).collect()
    }

    /// Revokes the active key with this id or name; returns it.
    pub async fn revoke_key(&self, id_or_name: &str) -> Result<ApiKey> {
        let key = self
            .keys()
            .await?
            .into_iter()
            .find(|k| k.revoked_at.is_none() && (k.id == id_or_name || k.name == id_or_name))
            .ok_or_else(|| Error::NotFound {
                what: "active API key",
                id: id_or_name.to_string(),
            })?;
        sqlx::query("UPDATE api_keys SET revoked_at = $2 WHERE id = $1")
            .bind(&key.id)
            .bind(Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(ApiKey {
            revoked_at: Some(Utc::now()),
            ..key
        })
    }

    /// The active key whose secret is `secret`, if any; records that it was used.
    pub async fn check_key(&self, secret: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(
            "SELECT id, name, prefix, created_at, last_used_at, revoked_at FROM api_keys \
             WHERE hash = $1 AND revoked_at IS NULL",
        )
        .bind(key_hash(secret))
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err())?;
        let Some(row) = row else { return Ok(None) };
        let key = key_from_row(&row, &self.path)?;
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(&key.id)
            .bind(Utc::now().to_rfc3339())
            .execute(&self.pool)
            .await
            .map_err(self.err())?;
        Ok(Some(key))
    }

    /// Whether any active key exists.
    pub async fn has_keys(&self) -> Result<bool> {
        let n: i64 = sqlx::query("SELECT COUNT(*) FROM api_keys WHERE revoked_at IS NULL")
            .fetch_one(&self.pool)
            .await
            .map_err(self.err())?
            .get(0);
        Ok(n > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_works_until_revoked_and_only_its_hash_is_stored() {
        let tmp = tempfile::tempdir().unwrap();
        let catalog = Catalog::open(&tmp.path().join("catalog.db")).await.unwrap();
        let (key, secret) = catalog.create_key("newsroom").await.unwrap();
        assert!(secret.starts_with(KEY_PREFIX) && secret.len() == KEY_PREFIX.len() + 64);
        assert!(secret.starts_with(&key.prefix));
        assert!(
            catalog.create_key("newsroom").await.is_err(),
            "names of active keys are unique"
        );
        assert!(catalog.has_keys().await.unwrap());
        assert_eq!(
            catalog.check_key(&secret).await.unwrap().unwrap().id,
            key.id
        );
        assert!(catalog.check_key("kairos_wrong").await.unwrap().is_none());
        let stored: String = sqlx::query("SELECT hash FROM api_keys")
            .fetch_one(&catalog.pool)
            .await
            .unwrap()
            .get(0);
        assert_ne!(stored, secret);
        assert_eq!(stored, key_hash(&secret));
        catalog.revoke_key("newsroom").await.unwrap();
        assert!(catalog.check_key(&secret).await.unwrap().is_none());
        assert!(!catalog.has_keys().await.unwrap());
        // The name is free again once revoked.
        catalog.create_key("newsroom").await.unwrap();
    }
}
