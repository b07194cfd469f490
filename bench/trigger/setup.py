"""Creates the benchmark's pipeline and webhooks through pipehook's AWS-compatible API with boto3 (the
client of seed 001), and prints the two trigger URLs: one whose filter matches the benchmark push
(refs/heads/master) and one whose filter does not.

    python3 setup.py ENDPOINT ACCESS_KEY_ID SECRET_ACCESS_KEY WEBHOOK_SECRET
"""
import sys

import boto3

endpoint, key_id, secret_key, webhook_secret = sys.argv[1:5]
cp = boto3.client(
    "codepipeline",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id=key_id,
    aws_secret_access_key=secret_key,
)


def pipeline(name, branch):
    return {
        "name": name,
        "roleArn": "arn:aws:iam::123456789012:role/bench",
        "artifactStore": {"type": "S3", "location": "bench-artifacts"},
        "executionMode": "PARALLEL",
        "stages": [
            {
                "name": "Source",
                "actions": [
                    {
                        "name": "Source",
                        "actionTypeId": {"category": "Source", "owner": "ThirdParty", "provider": "GitHub", "version": "1"},
                        "configuration": {"Owner": "Codertocat", "Repo": "Hello-World", "Branch": branch,
                                          "OAuthToken": "unused", "PollForSourceChanges": "false"},
                    }
                ],
            },
            {
                "name": "Build",
                "actions": [
                    {
                        "name": "Build",
                        "actionTypeId": {"category": "Build", "owner": "Custom", "provider": "Command", "version": "1"},
                        "configuration": {"Command": "true"},
                    }
                ],
            },
        ],
    }


urls = {}
for name, branch in [("triggered", "master"), ("filtered", "does-not-exist")]:
    cp.create_pipeline(pipeline=pipeline(name, branch))
    hook = cp.put_webhook(
        webhook={
            "name": name,
            "targetPipeline": name,
            "targetAction": "Source",
            "filters": [{"jsonPath": "$.ref", "matchEquals": "refs/heads/{Branch}"}],
            "authentication": "GITHUB_HMAC",
            "authenticationConfiguration": {"SecretToken": webhook_secret},
        }
    )
    urls[name] = hook["webhook"]["url"]
print(urls["triggered"])
print(urls["filtered"])
