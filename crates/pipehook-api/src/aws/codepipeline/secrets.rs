//! Secret action configuration (`OAuthToken` of GitHub-style source actions): encrypted at rest with the master
//! key (bound to the organization and pipeline), shown as `****` by every read, as CodePipeline shows it, and
//! kept when an update sends `****` back (the round trip GetPipeline → UpdatePipeline cannot resend the value).

use pipehook_domain::pipeline::{SECRET_CONFIGURATION_KEYS as SECRET_KEYS, SECRET_MASK as MASK};
use pipehook_domain::secret::MasterKey;
use serde_json::Value;

fn context(org: i64, pipeline: &str) -> String {
    format!("pipeline-action-secret:{org}:{pipeline}")
}

/// Each action's configuration object with its stage and action names.
fn configurations(doc: &mut Value) -> Vec<(String, String, &mut serde_json::Map<String, Value>)> {
    let mut out = Vec::new();
    for stage in doc["stages"].as_array_mut().into_iter().flatten() {
        let stage_name = stage["name"].as_str().unwrap_or_default().to_owned();
        for action in stage["actions"].as_array_mut().into_iter().flatten() {
            let action_name = action["name"].as_str().unwrap_or_default().to_owned();
            if let Some(config) = action.get_mut("configuration").and_then(Value::as_object_mut) {
                out.push((stage_name.clone(), action_name, config));
            }
        }
    }
    out
}

/// The stored (sealed) value of `key` for the action `stage`/`action` of a stored declaration.
fn stored_value<'a>(doc: &'a Value, stage: &str, action: &str, key: &str) -> Option<&'a str> {
    doc["stages"].as_array()?.iter().find(|s| s["name"] == stage)?["actions"]
        .as_array()?
        .iter()
        .find(|a| a["name"] == action)?["configuration"][key]
        .as_str()
}

/// Encrypts the secret values of a declaration before it is stored. `****` takes the value stored for the same
/// stage and action in `previous` (the current version), or is refused when there is none.
pub fn seal(key: &MasterKey, org: i64, pipeline: &str, doc: &mut Value, previous: Option<&Value>) {
    let ctx = context(org, pipeline);
    for (stage, action, config) in configurations(doc) {
        for name in SECRET_KEYS {
            let Some(Value::String(value)) = config.get(name) else { continue };
            let kept = match previous.and_then(|p| stored_value(p, &stage, &action, name)) {
                // Ciphertext is kept as it is (also one that does not decrypt here: never re-sealed as text).
                Some(old) if value == MASK && (old.starts_with("v1:") || key.decrypt(&ctx, old).is_ok()) => {
                    Some(old.to_owned())
                }
                // Stored before secrets were encrypted.
                Some(old) if value == MASK => Some(key.encrypt(&ctx, old.as_bytes())),
                _ => None,
            };
            // `****` with nothing stored before is a value like any other, as CodePipeline takes it.
            let sealed = kept.unwrap_or_else(|| key.encrypt(&ctx, value.as_bytes()));
            config.insert(name.to_owned(), Value::String(sealed));
        }
    }
}

/// The declaration as reads show it: every secret value is `****`.
pub fn mask(doc: &Value) -> Value {
    let mut out = doc.clone();
    for (_, _, config) in configurations(&mut out) {
        let masked = pipehook_domain::pipeline::mask_configuration(&Value::Object(std::mem::take(config)));
        if let Value::Object(m) = masked {
            *config = m;
        }
    }
    out
}

/// A configuration without its secret keys: what webhook filter placeholders (`{Branch}`) may use, so no
/// secret reaches a rule or the inbound log through `{OAuthToken}`.
pub fn without_secrets(
    config: &std::collections::BTreeMap<String, String>,
) -> std::collections::BTreeMap<String, String> {
    config.iter().filter(|(k, _)| !SECRET_KEYS.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// A stored secret value in clear (a value stored before secrets were encrypted is returned as it is).
pub fn open(key: &MasterKey, org: i64, pipeline: &str, stored: &str) -> Result<String, String> {
    match key.decrypt(&context(org, pipeline), stored) {
        Ok(plain) => String::from_utf8(plain).map_err(|_| "the stored secret is not UTF-8".to_owned()),
        Err(_) if !stored.starts_with("v1:") => Ok(stored.to_owned()),
        Err(e) => Err(format!("the stored secret does not decrypt: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decl(token: &str) -> Value {
        json!({"name": "p", "stages": [{"name": "Source", "actions": [
            {"name": "Src", "configuration": {"Owner": "o", "OAuthToken": token}},
            {"name": "NoConfig"}
        ]}]})
    }

    #[test]
    fn sealed_masked_kept_and_opened() {
        let key = MasterKey::generate();
        let mut doc = decl("ghp-secret");
        seal(&key, 1, "p", &mut doc, None);
        let stored = doc["stages"][0]["actions"][0]["configuration"]["OAuthToken"].as_str().unwrap().to_owned();
        assert!(!stored.contains("ghp-secret"));
        assert_eq!(open(&key, 1, "p", &stored).unwrap(), "ghp-secret");
        assert!(open(&key, 2, "p", &stored).is_err(), "bound to the organization");
        assert_eq!(mask(&doc)["stages"][0]["actions"][0]["configuration"]["OAuthToken"], MASK);
        assert_eq!(mask(&doc)["stages"][0]["actions"][0]["configuration"]["Owner"], "o");
        // `****` keeps the stored value; without one it is the value.
        let mut again = decl(MASK);
        seal(&key, 1, "p", &mut again, Some(&doc));
        assert_eq!(again["stages"][0]["actions"][0]["configuration"]["OAuthToken"].as_str(), Some(stored.as_str()));
        let mut fresh = decl(MASK);
        seal(&key, 1, "p", &mut fresh, None);
        let sealed = fresh["stages"][0]["actions"][0]["configuration"]["OAuthToken"].as_str().unwrap();
        assert_eq!(open(&key, 1, "p", sealed).unwrap(), MASK);
        // A plain value stored before: opened as it is, and sealed on the next update.
        assert_eq!(open(&key, 1, "p", "legacy-plain").unwrap(), "legacy-plain");
        let mut next = decl(MASK);
        seal(&key, 1, "p", &mut next, Some(&decl("legacy-plain")));
        let sealed = next["stages"][0]["actions"][0]["configuration"]["OAuthToken"].as_str().unwrap();
        assert_eq!(open(&key, 1, "p", sealed).unwrap(), "legacy-plain");
    }
}
