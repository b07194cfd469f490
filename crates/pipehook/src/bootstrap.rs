//! First-start and declared credentials.
//!
//! The `bootstrap` settings name an organization and, optionally, a token and an access key pair; they are
//! created if missing, idempotently, on every start. With none given and no credentials stored at all, the
//! first start generates a token and a key pair and prints them once: there is no other way to see them.

use pipehook_domain::credentials::{AccessKeyId, ApiToken, SecretAccessKey};
use pipehook_domain::org::{AccountId, OrgName, Organization};
use pipehook_domain::secret::MasterKey;
use pipehook_store::{Store, StoreError, Tx};

use crate::config::{BootstrapConfig, ConfigError};

/// Credentials generated on first start, to be shown once.
#[derive(Debug)]
pub struct Generated {
    pub org: String,
    pub token: ApiToken,
    pub access_key_id: AccessKeyId,
    pub secret_access_key: SecretAccessKey,
}

#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Finds or creates the organization, inside `tx`.
pub async fn ensure_org(
    store: &dyn Store,
    tx: &mut dyn Tx,
    name: &OrgName,
    account: Option<&AccountId>,
) -> Result<Organization, BootstrapError> {
    if let Some(existing) = store.org_by_name(name).await? {
        if let Some(want) = account {
            if *want != existing.account_id {
                return Err(ConfigError::new(
                    "bootstrap.account_id (PIPEHOOK_BOOTSTRAP_ACCOUNT_ID)",
                    format!("organization '{name}' already exists with account id {}", existing.account_id),
                )
                .into());
            }
        }
        return Ok(existing);
    }
    let account = account.cloned().unwrap_or_else(AccountId::generate);
    Ok(tx.create_org(name, &account).await?)
}

/// Applies the bootstrap settings. Nodes starting together race to create the same rows; the loser of a
/// race sees a uniqueness conflict and runs again, finding the winner's rows.
pub async fn run(
    store: &dyn Store,
    key: &MasterKey,
    cfg: &BootstrapConfig,
) -> Result<Option<Generated>, BootstrapError> {
    let mut attempt = 0;
    loop {
        match run_once(store, key, cfg).await {
            Err(BootstrapError::Store(StoreError::Conflict(_))) if attempt < 3 => attempt += 1,
            Err(BootstrapError::Store(StoreError::Conflict(m))) => {
                return Err(ConfigError::new(
                    "bootstrap (PIPEHOOK_BOOTSTRAP_*)",
                    format!("conflicts with stored credentials (a revoked bootstrap token?): {m}"),
                )
                .into())
            }
            other => return other,
        }
    }
}

async fn run_once(
    store: &dyn Store,
    key: &MasterKey,
    cfg: &BootstrapConfig,
) -> Result<Option<Generated>, BootstrapError> {
    let mut tx = store.begin().await?;
    let org = ensure_org(store, &mut *tx, &cfg.org, cfg.account_id.as_ref()).await?;

    if let Some(token) = &cfg.token {
        match store.token_principal(&token.hash()).await? {
            Some(p) if p.org.id != org.id => {
                return Err(ConfigError::new(
                    "bootstrap.token (PIPEHOOK_BOOTSTRAP_TOKEN)",
                    format!("this token already belongs to organization '{}'", p.org.name),
                )
                .into())
            }
            Some(_) => {}
            None => {
                tx.create_token(org.id, &token.hash(), "bootstrap").await?;
            }
        }
    }

    if let Some((id, secret)) = &cfg.access_key {
        let ciphertext = key.encrypt(&id.encryption_context(), secret.expose().as_bytes());
        match store.access_key(id).await? {
            None => tx.create_access_key(org.id, id, &ciphertext, "bootstrap").await?,
            Some(rec) if rec.org != org.id => {
                return Err(ConfigError::new(
                    "bootstrap.aws_access_key_id (PIPEHOOK_BOOTSTRAP_AWS_ACCESS_KEY_ID)",
                    "this access key id belongs to another organization",
                )
                .into())
            }
            Some(rec) if rec.revoked_at.is_some() => {
                tracing::warn!(access_key_id = id.as_str(), "the bootstrap access key was revoked; it stays revoked");
            }
            Some(rec) => {
                let same = key
                    .decrypt(&id.encryption_context(), &rec.secret_ciphertext)
                    .is_ok_and(|s| s == secret.expose().as_bytes());
                if !same {
                    tx.set_access_key_secret(org.id, id, &ciphertext).await?;
                }
            }
        }
    }

    let mut generated = None;
    if cfg.token.is_none() && cfg.access_key.is_none() && store.count_active_credentials().await? == 0 {
        let token = ApiToken::generate();
        let access_key_id = AccessKeyId::generate();
        let secret_access_key = SecretAccessKey::generate();
        tx.create_token(org.id, &token.hash(), "generated at first start").await?;
        let ct = key.encrypt(&access_key_id.encryption_context(), secret_access_key.expose().as_bytes());
        tx.create_access_key(org.id, &access_key_id, &ct, "generated at first start").await?;
        generated = Some(Generated { org: org.name.to_string(), token, access_key_id, secret_access_key });
    }
    tx.commit().await?;
    Ok(generated)
}

impl Generated {
    /// The one-time notice, for stdout.
    pub fn notice(&self) -> String {
        format!(
            "\npipehook generated credentials for organization '{org}'. They are shown only this once:\n\
             \n  REST API token:         {token}\n  AWS access key id:      {id}\n  AWS secret access key:  {secret}\n\
             \nUse them as `Authorization: token <token>` and as AWS credentials (e.g. AWS_ACCESS_KEY_ID /\n\
             AWS_SECRET_ACCESS_KEY with --endpoint-url). Create more with `pipehook token create --org {org}`.\n",
            org = self.org,
            token = self.token.expose(),
            id = self.access_key_id.as_str(),
            secret = self.secret_access_key.expose(),
        )
    }
}
