//! An operation's input checked against the botocore model before it is read into its typed shape, so the two
//! failures AWS's JSON protocol tells apart are told apart here too:
//!
//! - JSON that does not parse, or a member of the wrong JSON type (a number where the model has a string, an
//!   object where it has a list, ...): `SerializationException`, as before;
//! - a member the model marks `required` that is absent or `null`, at any depth: `ValidationException`, every
//!   one of them in one message, in AWS's words: `1 validation error detected: Value null at 'webhook.filters'
//!   failed to satisfy constraint: Member must not be null` (list members as `filters.1.member.jsonPath`, map
//!   values as `artifactStores.<key>.location`, like the other constraint messages).
//!
//! The model is `model/codepipeline-2015-07-09.service-2.json`, compiled in and read once; only the shape graph
//! (member types, required members) is kept. Members the model does not know are ignored, as AWS ignores them.
//! Enum values, lengths and patterns are the handlers' business (`pipehook_domain::pipeline`, `webhooks.rs`).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::AwsError;

const CODEPIPELINE: &str = include_str!("../../../../model/codepipeline-2015-07-09.service-2.json");

/// The botocore model's shapes, reduced to what the check needs.
pub(crate) struct Model {
    /// Operation name → input shape name.
    inputs: HashMap<String, String>,
    shapes: HashMap<String, Shape>,
}

#[derive(Debug)]
enum Shape {
    /// Members as (name, shape): the required ones first, in the model's `required` order, then the others by
    /// name. Errors are reported in this order, depth first.
    Structure {
        members: Vec<(String, String)>,
        required: Vec<String>,
    },
    List(String),
    /// The value shape (keys are strings).
    Map(String),
    String,
    Integer,
    Number,
    Boolean,
    Timestamp,
    /// A type this check does not judge.
    Any,
}

impl Shape {
    fn wanted(&self) -> &'static str {
        match self {
            Shape::Structure { .. } | Shape::Map(_) => "an object",
            Shape::List(_) => "a list",
            Shape::String => "a string",
            Shape::Integer => "an integer",
            Shape::Number => "a number",
            Shape::Boolean => "a boolean",
            Shape::Timestamp => "a timestamp",
            Shape::Any => "any value",
        }
    }

    fn accepts(&self, v: &Value) -> bool {
        match self {
            Shape::Structure { .. } | Shape::Map(_) => v.is_object(),
            Shape::List(_) => v.is_array(),
            Shape::String => v.is_string(),
            Shape::Integer => v.is_i64() || v.is_u64(),
            Shape::Number => v.is_number(),
            Shape::Boolean => v.is_boolean(),
            // Epoch seconds in the JSON protocols; a string is left to the typed reader.
            Shape::Timestamp => v.is_number() || v.is_string(),
            Shape::Any => true,
        }
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl Model {
    /// CodePipeline's model (`CodePipeline_20150709`).
    pub(crate) fn codepipeline() -> &'static Model {
        static MODEL: OnceLock<Model> = OnceLock::new();
        MODEL.get_or_init(|| Model::parse(CODEPIPELINE))
    }

    /// Reads a botocore `service-2.json`. The text is compiled in and tested, so a malformed one is a build
    /// defect, not a request's fault.
    fn parse(text: &str) -> Model {
        let doc: Value = serde_json::from_str(text).expect("the compiled-in botocore model is JSON");
        let name = |v: &Value| v["shape"].as_str().unwrap_or_default().to_owned();
        let inputs = doc["operations"]
            .as_object()
            .into_iter()
            .flatten()
            .filter(|(_, op)| op["input"].is_object())
            .map(|(op, v)| (op.clone(), name(&v["input"])))
            .collect();
        let shapes = doc["shapes"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(n, s)| {
                let shape = match s["type"].as_str().unwrap_or_default() {
                    "structure" => {
                        let required: Vec<String> = s["required"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(|r| r.as_str().map(str::to_owned))
                            .collect();
                        let mut members: Vec<(String, String)> =
                            s["members"].as_object().into_iter().flatten().map(|(m, v)| (m.clone(), name(v))).collect();
                        members.sort_by_key(|(m, _)| {
                            (required.iter().position(|r| r == m).unwrap_or(usize::MAX), m.clone())
                        });
                        Shape::Structure { members, required }
                    }
                    "list" => Shape::List(name(&s["member"])),
                    "map" => Shape::Map(name(&s["value"])),
                    "string" | "blob" => Shape::String,
                    "integer" | "long" => Shape::Integer,
                    "float" | "double" => Shape::Number,
                    "boolean" => Shape::Boolean,
                    "timestamp" => Shape::Timestamp,
                    _ => Shape::Any,
                };
                (n.clone(), shape)
            })
            .collect();
        Model { inputs, shapes }
    }

    /// Checks `operation`'s input (the request body, already parsed) against the model: the first member of the
    /// wrong type is `SerializationException`; otherwise every required member that is absent or null, together,
    /// is `ValidationException`. An operation the model does not have is not checked.
    pub(crate) fn check_input(&self, operation: &str, input: &Value) -> Result<(), AwsError> {
        let Some(shape) = self.inputs.get(operation) else { return Ok(()) };
        let mut missing = Vec::new();
        self.walk(shape, "", input, &mut missing)?;
        if missing.is_empty() {
            return Ok(());
        }
        let n = missing.len();
        let list: Vec<String> = missing
            .iter()
            .map(|p| format!("Value null at '{p}' failed to satisfy constraint: Member must not be null"))
            .collect();
        Err(AwsError::validation(format!(
            "{n} validation error{} detected: {}",
            if n == 1 { "" } else { "s" },
            list.join("; ")
        )))
    }

    /// `value` (not null) at `path` against `shape`: its JSON type, then what it holds.
    fn walk(&self, shape: &str, path: &str, value: &Value, missing: &mut Vec<String>) -> Result<(), AwsError> {
        let Some(s) = self.shapes.get(shape) else { return Ok(()) };
        if !s.accepts(value) {
            let at = if path.is_empty() { "The request body".to_owned() } else { format!("The value at '{path}'") };
            return Err(AwsError::serialization(format!(
                "Could not parse the request: {at} is {} where the model wants {} ({shape})",
                json_type(value),
                s.wanted()
            )));
        }
        let child = |name: &str| if path.is_empty() { name.to_owned() } else { format!("{path}.{name}") };
        match (s, value) {
            (Shape::Structure { members, required }, Value::Object(object)) => {
                for r in required {
                    if object.get(r).is_none_or(Value::is_null) {
                        missing.push(child(r));
                    }
                }
                for (name, member_shape) in members {
                    if let Some(v) = object.get(name).filter(|v| !v.is_null()) {
                        self.walk(member_shape, &child(name), v, missing)?;
                    }
                }
            }
            (Shape::List(member), Value::Array(items)) => {
                for (i, v) in items.iter().enumerate().filter(|(_, v)| !v.is_null()) {
                    self.walk(member, &child(&format!("{}.member", i + 1)), v, missing)?;
                }
            }
            (Shape::Map(member), Value::Object(entries)) => {
                for (key, v) in entries.iter().filter(|(_, v)| !v.is_null()) {
                    self.walk(member, &child(key), v, missing)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    #[cfg(test)]
    fn has_input(&self, operation: &str) -> bool {
        self.inputs.get(operation).is_some_and(|s| self.shapes.contains_key(s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(op: &str, input: Value) -> Result<(), (String, String)> {
        Model::codepipeline().check_input(op, &input).map_err(|e| (e.kind.to_owned(), e.message))
    }

    fn null_at(paths: &[&str]) -> (String, String) {
        let list: Vec<String> = paths
            .iter()
            .map(|p| format!("Value null at '{p}' failed to satisfy constraint: Member must not be null"))
            .collect();
        let n = paths.len();
        (
            "ValidationException".into(),
            format!("{n} validation error{} detected: {}", if n == 1 { "" } else { "s" }, list.join("; ")),
        )
    }

    fn webhook() -> Value {
        json!({
            "name": "w", "targetPipeline": "p", "targetAction": "Source",
            "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/main"}],
            "authentication": "UNAUTHENTICATED", "authenticationConfiguration": {}
        })
    }

    #[test]
    fn every_codepipeline_operation_has_its_input_in_the_model() {
        for op in crate::aws::codepipeline::Operation::ALL {
            assert!(Model::codepipeline().has_input(op.name()), "{}", op.name());
        }
    }

    #[test]
    fn required_members_are_validation_errors_in_aws_words() {
        assert_eq!(check("PutWebhook", json!({"webhook": webhook()})), Ok(()));
        let mut w = webhook();
        w.as_object_mut().unwrap().remove("filters");
        assert_eq!(check("PutWebhook", json!({"webhook": w})), Err(null_at(&["webhook.filters"])));
        // A null member is an absent one; all missing members are listed, in the model's order.
        let mut w = webhook();
        w.as_object_mut().unwrap().remove("authenticationConfiguration");
        w["filters"] = Value::Null;
        assert_eq!(
            check("PutWebhook", json!({"webhook": w})),
            Err(null_at(&["webhook.filters", "webhook.authenticationConfiguration"]))
        );
        assert_eq!(check("PutWebhook", json!({})), Err(null_at(&["webhook"])));
        assert_eq!(check("PutWebhook", json!({"webhook": null})), Err(null_at(&["webhook"])));
        // Inside lists: 1-based `member` paths.
        let mut w = webhook();
        w["filters"] = json!([{"jsonPath": "$.a"}, {"matchEquals": "x"}]);
        assert_eq!(
            check("PutWebhook", json!({"webhook": w, "tags": [{"key": "k"}]})),
            Err(null_at(&["webhook.filters.2.member.jsonPath", "tags.1.member.value"]))
        );
        assert_eq!(check("GetPipelineExecution", json!({})), Err(null_at(&["pipelineName", "pipelineExecutionId"])));
        assert_eq!(
            check("CreatePipeline", json!({"pipeline": {"name": "p", "stages": [{"name": "S"}]}})),
            Err(null_at(&["pipeline.roleArn", "pipeline.stages.1.member.actions"]))
        );
        // Map values are named by their key.
        let store = json!({"pipeline": {"name": "p", "roleArn": "r", "stages": [],
            "artifactStores": {"us-east-1": {"type": "S3"}}}});
        assert_eq!(check("UpdatePipeline", store), Err(null_at(&["pipeline.artifactStores.us-east-1.location"])));
        // Operations whose input has nothing required; members the model does not know are ignored.
        assert_eq!(check("ListWebhooks", json!({})), Ok(()));
        assert_eq!(check("ListPipelines", json!({"unknownMember": {"x": 1}})), Ok(()));
        assert_eq!(check("RegisterWebhookWithThirdParty", json!({})), Ok(()));
    }

    #[test]
    fn a_wrong_type_is_a_serialization_error_even_beside_a_missing_member() {
        for (op, input) in [
            ("GetPipeline", json!({"name": 5})),
            ("PutWebhook", json!({"webhook": {"name": "w", "filters": "$.ref"}})),
            ("PutWebhook", json!({"webhook": {"name": ["w"]}})),
            ("PutWebhook", json!({"webhook": {"filters": [{"jsonPath": 1}]}})),
            ("PutWebhook", json!({"webhook": []})),
            ("ListPipelines", json!({"maxResults": "5"})),
            ("ListPipelines", json!({"maxResults": 1.5})),
            ("ListPipelines", json!([])),
            ("CreatePipeline", json!({"pipeline": {"stages": [{"actions": [{"runOrder": true}]}]}})),
        ] {
            let (kind, message) = check(op, input.clone()).unwrap_err();
            assert_eq!(kind, "SerializationException", "{op} {input}: {message}");
        }
        assert!(check("GetPipeline", json!({"name": 5})).unwrap_err().1.contains("'name' is a number"));
    }
}
