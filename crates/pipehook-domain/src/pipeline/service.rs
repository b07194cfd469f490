//! The rules pipehook adds on top of the CodePipeline model: which action types it can run, its quotas, and
//! what starting or stopping an execution accepts.
//!
//! They live here rather than in one API module because both the AWS-compatible endpoint and the native REST
//! API apply them, and the two must refuse exactly the same pipelines and requests. Each API words the
//! refusal in its own error shape.

use super::{PipelineDeclaration, PipelineError};

/// Pipelines per organization (AWS's default quota is 1,000 per region).
pub const MAX_PIPELINES: u64 = 1000;

/// The largest pipeline document accepted (AWS documents a 1 MB limit for the declaration); larger ones are
/// refused before parsing.
pub const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;

/// The source providers pipehook can check out.
pub const SOURCE_PROVIDERS: [&str; 5] =
    ["GitHub", "GitHubEnterpriseServer", "GitLab", "Bitbucket", "CodeStarSourceConnection"];

/// The longest action timeout a `TimeoutSeconds` configuration may ask for.
pub const MAX_ACTION_TIMEOUT_SECONDS: u64 = 8 * 3600;

/// The most variable values one start request may give (the model's `PipelineVariableList`).
pub const MAX_START_VARIABLES: usize = 50;

/// The longest reason a stop request may carry (the model's `StopPipelineExecutionReason`).
pub const MAX_STOP_REASON_LEN: usize = 200;

/// pipehook runs actions itself, so a declaration may only use action types it can run: source actions of the
/// git hosts, `Custom`/`Command` actions (which need a `Command`) and `AWS`/`CodeBuild` actions (which need a
/// `ProjectName`; the project is looked up when the action runs, as in CodePipeline). Anything else is refused at create/update
/// time rather than failing every execution later.
pub fn supported_actions(decl: &PipelineDeclaration) -> Result<(), PipelineError> {
    for (si, stage) in decl.stages.iter().enumerate() {
        for (ai, action) in stage.actions.iter().enumerate() {
            let t = &action.action_type_id;
            let ok = if t.is_source() {
                SOURCE_PROVIDERS.contains(&t.provider.as_str())
            } else {
                t.is_command() || t.is_codebuild()
            };
            if !ok {
                return Err(PipelineError::InvalidActionDeclaration(format!(
                    "ActionType (Category: '{:?}', Provider: '{}', Owner: '{:?}', Version: '{}') in action '{}' of stage '{}' \
                     is not available: pipehook runs source actions ({}), Custom/Command and AWS/CodeBuild actions",
                    t.category,
                    t.provider,
                    t.owner,
                    t.version,
                    action.name,
                    stage.name,
                    SOURCE_PROVIDERS.join(", ")
                )));
            }
            let config = action.configuration.as_ref();
            if t.is_command() && config.and_then(|c| c.get("Command")).is_none_or(|c| c.trim().is_empty()) {
                return Err(PipelineError::InvalidActionDeclaration(format!(
                    "Action configuration for action '{}' (pipeline.stages.{}.member.actions.{}) is missing required \
                     configuration key 'Command'",
                    action.name,
                    si + 1,
                    ai + 1
                )));
            }
            if t.is_codebuild() && config.and_then(|c| c.get("ProjectName")).is_none_or(|c| c.trim().is_empty()) {
                return Err(PipelineError::InvalidActionDeclaration(format!(
                    "Action configuration for action '{}' (pipeline.stages.{}.member.actions.{}) is missing required \
                     configuration key 'ProjectName'",
                    action.name,
                    si + 1,
                    ai + 1
                )));
            }
            if let Some(t) = config.and_then(|c| c.get("TimeoutSeconds")) {
                if !t.parse::<u64>().is_ok_and(|n| (1..=MAX_ACTION_TIMEOUT_SECONDS).contains(&n)) {
                    return Err(PipelineError::InvalidActionDeclaration(format!(
                        "Action '{}': configuration TimeoutSeconds must be a whole number of seconds from 1 to \
                         {MAX_ACTION_TIMEOUT_SECONDS}",
                        action.name
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The model's `ClientRequestToken`: 1 to 128 characters of `[a-zA-Z0-9-]`.
pub fn is_valid_client_request_token(token: &str) -> bool {
    (1..=128).contains(&token.len()) && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// The model's `PipelineVariable`: a name of 1 to 128 characters of `[A-Za-z0-9@\-_]` and a value of 1 to 1000
/// bytes.
pub fn is_valid_variable_value(name: &str, value: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'@' | b'-' | b'_'))
        && !value.is_empty()
        && value.len() <= 1000
}

/// A start request gave a value for a variable the pipeline does not declare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UndeclaredVariable(pub String);

/// The variables an execution runs with: every variable the pipeline declares (V2 pipeline variables), with the
/// value given at start or else its default; a declared variable with neither is left out. Giving a value for
/// an undeclared variable is refused, because a typo would otherwise be silently ignored.
pub fn resolve_variables(
    decl: &PipelineDeclaration,
    given: &[(String, String)],
) -> Result<Vec<(String, String)>, UndeclaredVariable> {
    let declared = decl.variables.as_deref().unwrap_or_default();
    if let Some((name, _)) = given.iter().find(|(name, _)| !declared.iter().any(|d| &d.name == name)) {
        return Err(UndeclaredVariable(name.clone()));
    }
    Ok(declared
        .iter()
        .filter_map(|d| {
            let value = given.iter().find(|(n, _)| n == &d.name).map(|(_, v)| v.clone()).or(d.default_value.clone())?;
            Some((d.name.clone(), value))
        })
        .collect())
}

/// The ARN of a CodePipeline resource (a pipeline's is its name). Tags are stored by ARN, so every API that
/// deletes a pipeline must compute the same one.
pub fn codepipeline_arn(region: &str, account_id: &str, resource: &str) -> String {
    format!("arn:aws:codepipeline:{region}:{account_id}:{resource}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn decl(actions: serde_json::Value, variables: serde_json::Value) -> PipelineDeclaration {
        serde_json::from_value(json!({
            "name": "p",
            "roleArn": "arn:aws:iam::123456789012:role/r",
            "stages": [{"name": "Build", "actions": actions}],
            "variables": variables,
        }))
        .unwrap()
    }

    fn action(category: &str, owner: &str, provider: &str, config: serde_json::Value) -> serde_json::Value {
        json!({
            "name": "A",
            "actionTypeId": {"category": category, "owner": owner, "provider": provider, "version": "1"},
            "configuration": config,
        })
    }

    #[test]
    fn only_runnable_actions_are_supported() {
        let cases = [
            (action("Build", "Custom", "Command", json!({"Command": "echo hi"})), None),
            (action("Source", "ThirdParty", "GitHub", json!({"Owner": "o"})), None),
            (action("Build", "AWS", "CodeBuild", json!({"ProjectName": "x"})), None),
            (action("Test", "AWS", "CodeBuild", json!({"ProjectName": "x"})), None),
            (action("Build", "AWS", "CodeBuild", json!({})), Some("'ProjectName'")),
            (action("Build", "AWS", "CodeDeploy", json!({"ProjectName": "x"})), Some("is not available")),
            (action("Source", "AWS", "S3", json!({"S3Bucket": "b"})), Some("is not available")),
            (action("Build", "Custom", "Command", json!({"Command": "  "})), Some("'Command'")),
            (action("Build", "Custom", "Command", json!({"Command": "x", "TimeoutSeconds": "0"})), Some("Timeout")),
            (action("Build", "Custom", "Command", json!({"Command": "x", "TimeoutSeconds": "60"})), None),
        ];
        for (a, want) in cases {
            let got = supported_actions(&decl(json!([a.clone()]), json!(null)));
            match want {
                None => assert_eq!(got, Ok(()), "{a}"),
                Some(fragment) => {
                    let e = got.expect_err(&a.to_string());
                    assert_eq!(e.aws_type(), "InvalidActionDeclarationException");
                    assert!(e.message().contains(fragment), "{}", e.message());
                }
            }
        }
    }

    #[test]
    fn variables_resolve_against_the_declaration() {
        let d = decl(
            json!([action("Build", "Custom", "Command", json!({"Command": "x"}))]),
            json!([{"name": "env", "defaultValue": "dev"}, {"name": "region"}, {"name": "unset"}]),
        );
        let given = vec![("region".to_owned(), "eu".to_owned())];
        assert_eq!(
            resolve_variables(&d, &given).unwrap(),
            vec![("env".to_owned(), "dev".to_owned()), ("region".to_owned(), "eu".to_owned())]
        );
        let typo = vec![("regoin".to_owned(), "eu".to_owned())];
        assert_eq!(resolve_variables(&d, &typo), Err(UndeclaredVariable("regoin".into())));
    }

    #[test]
    fn start_request_members() {
        assert!(is_valid_client_request_token("abc-123"));
        assert!(!is_valid_client_request_token(""));
        assert!(!is_valid_client_request_token("a_b"));
        assert!(!is_valid_client_request_token(&"a".repeat(129)));
        assert!(is_valid_variable_value("A@b-c_d", "v"));
        assert!(!is_valid_variable_value("a b", "v"));
        assert!(!is_valid_variable_value("a", ""));
        assert!(!is_valid_variable_value("a", &"v".repeat(1001)));
        assert_eq!(
            codepipeline_arn("us-east-1", "123456789012", "app"),
            "arn:aws:codepipeline:us-east-1:123456789012:app"
        );
    }
}
