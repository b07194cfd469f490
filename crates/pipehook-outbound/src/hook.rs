//! The rules a hook's fields must follow, checked on create and update. Each failure names the field.

use crate::kinds;

/// Formats a hook can render events in.
pub const FORMATS: &[&str] = &["raw", "slack", "ms_teams", "pulumi_deployments"];

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

/// Puppet Pipelines' rule for friendly names: no spaces or special characters. Letters, digits, `-`, `_`
/// and `.`, 1 to 100 characters, not `.` or `..` (they would be path segments).
pub fn validate_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid webhook name {name:?}: use 1 to 100 letters, digits, '-', '_' or '.', without spaces"
        )))
    }
}

/// Pulumi's rule for project, stack and ESC environment names: letters, digits, `-`, `_` and `.`, 1 to 100
/// characters; `.` and `..` are refused too (they would be path segments). `what` names the kind for the message.
fn validate_pulumi_name(what: &str, name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name != "."
        && name != ".."
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid(format!(
            "invalid {what} name {name:?}: {what} names may only contain alphanumerics, hyphens, underscores and \
             periods, 1 to 100 characters"
        )))
    }
}

/// A Pulumi project name (stack and environment hooks' `{project}`, an event's `projectName`).
pub fn validate_project_name(name: &str) -> Result<(), Invalid> {
    validate_pulumi_name("project", name)
}

/// A Pulumi stack name (stack hooks' `{stack}`, an event's `stackName`).
pub fn validate_stack_name(name: &str) -> Result<(), Invalid> {
    validate_pulumi_name("stack", name)
}

/// A Pulumi ESC environment name (environment hooks' `{env}`, an event's `envName`).
pub fn validate_env_name(name: &str) -> Result<(), Invalid> {
    validate_pulumi_name("environment", name)
}

/// 1 to 256 printable characters.
pub fn validate_display_name(s: &str) -> Result<(), Invalid> {
    if s.trim().is_empty() || s.chars().count() > 256 || s.chars().any(char::is_control) {
        return Err(invalid("invalid display name: 1 to 256 printable characters"));
    }
    Ok(())
}

/// An absolute `http` or `https` URL with a host name or IP address, optional port, path and query, and
/// nothing else: no credentials, no fragment, at most 2048 characters. Whether its address may be reached is
/// decided at delivery time (see [`crate::ssrf`]).
pub fn validate_payload_url(s: &str) -> Result<reqwest::Url, Invalid> {
    let bad = |why: &str| invalid(format!("invalid payload URL: {why}"));
    if s.len() > 2048 {
        return Err(bad("longer than 2048 characters"));
    }
    // The WHATWG parser forgives `http:///host` and `http:\\host`; a payload URL must be written plainly.
    let lower = s.to_ascii_lowercase();
    let after_scheme = lower.strip_prefix("http://").or_else(|| lower.strip_prefix("https://"));
    if after_scheme.is_some_and(|r| r.starts_with('/') || r.starts_with('\\')) || s.contains(char::is_whitespace) {
        return Err(bad("a host is required"));
    }
    let url = reqwest::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("a host is required"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the URL are not allowed; use the secret"));
    }
    if url.fragment().is_some() {
        return Err(bad("a fragment is not allowed"));
    }
    Ok(url)
}

/// `format` with the scope's restriction: `pulumi_deployments` only on stack or environment hooks.
pub fn validate_format(format: &str, scope_kind: &str) -> Result<(), Invalid> {
    if !FORMATS.contains(&format) {
        return Err(invalid(format!("invalid format {format:?}: use one of {}", FORMATS.join(", "))));
    }
    if format == "pulumi_deployments" && scope_kind == "org" {
        return Err(invalid("'pulumi_deployments' format can only be used on stack or environment webhooks"));
    }
    Ok(())
}

pub fn validate_filters(filters: &[String]) -> Result<(), Invalid> {
    match kinds::unknown_filter(filters) {
        Some(f) => Err(invalid(format!("invalid filter {f:?}: not a known event kind"))),
        None => Ok(()),
    }
}

pub fn validate_groups(groups: &[String]) -> Result<(), Invalid> {
    match kinds::unknown_group(groups) {
        Some(g) => Err(invalid(format!("invalid group {g:?}: use one of {}", kinds::GROUPS.join(", ")))),
        None => Ok(()),
    }
}

/// A hook secret: 1 to 1024 characters. It is the HMAC key for both signatures.
pub fn validate_secret(s: &str) -> Result<(), Invalid> {
    if s.is_empty() || s.len() > 1024 {
        return Err(invalid("invalid secret: 1 to 1024 characters"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["build-hook", "a", "deploy_prod.v2", "A1"] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "with space", "semi;colon", "slash/", "..", "ü", &"x".repeat(101)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pulumi_names() {
        for ok in ["web", "my-project_2.x", "A", &"p".repeat(100)] {
            for f in [validate_project_name, validate_stack_name, validate_env_name] {
                assert!(f(ok).is_ok(), "{ok}");
            }
        }
        for bad in ["", ".", "..", "a/b", "a\0b", "a\r\nb", "with space", "ü", &"p".repeat(101)] {
            for f in [validate_project_name, validate_stack_name, validate_env_name] {
                assert!(f(bad).is_err(), "{bad:?}");
            }
        }
        assert!(validate_stack_name("..").unwrap_err().0.contains("stack name"));
    }

    #[test]
    fn payload_urls_follow_the_seed_examples() {
        for ok in [
            "http://192.0.2.25",
            "https://192.0.2.25",
            "http://webhook.example.com/build_started",
            "http://webhook.example.com:8080",
            "https://hook2.example.com:8443?userid=abc123&task=build_start",
            "http://[2001:db8::1]:8080/x",
        ] {
            assert!(validate_payload_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "webhook.example.com",
            "ftp://example.com/",
            "file:///etc/passwd",
            "http://user:pw@example.com/",
            "https://example.com/#frag",
            "http:///nohost",
            "javascript:alert(1)",
        ] {
            assert!(validate_payload_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_and_scopes() {
        assert!(validate_format("raw", "org").is_ok());
        assert!(validate_format("slack", "stack").is_ok());
        assert!(validate_format("xml", "org").is_err());
        let e = validate_format("pulumi_deployments", "org").unwrap_err();
        assert_eq!(e.0, "'pulumi_deployments' format can only be used on stack or environment webhooks");
        assert!(validate_format("pulumi_deployments", "env").is_ok());
    }
}
