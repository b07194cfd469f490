#!/bin/sh
# pipehook quickstart: from a running server to a pipeline run triggered by a signed GitHub push, its log,
# and the outbound deliveries that reported it. Uses the files in examples/ as they are.
#
#   PIPEHOOK_SERVER   the server (default http://127.0.0.1:8080)
#   PIPEHOOK_TOKEN    a REST API token (printed by the first start, or `pipehook token create --org default`)
#   RECEIVER_URL      optional: where the outbound hook delivers (default: examples/hook.json's payloadUrl,
#                     http://127.0.0.1:9000/pipehook)
#
# Deliveries to a local address (127.0.0.1) are refused unless the server was started with
# PIPEHOOK_OUTBOUND_ALLOWED_NETWORKS=127.0.0.0/8. Needs the `pipehook` binary on PATH, curl, and openssl.
# Running it again updates what it created and triggers a new run.
set -eu
cd "$(dirname "$0")/.."
PIPEHOOK_SERVER=${PIPEHOOK_SERVER:-http://127.0.0.1:8080}
: "${PIPEHOOK_TOKEN:?set PIPEHOOK_TOKEN to an API token (printed by the first start)}"
export PIPEHOOK_SERVER PIPEHOOK_TOKEN

# 1. A pipeline: a GitHub source (Codertocat/Hello-World, branch main) and a command that prints the commit.
if pipehook pipelines get hello >/dev/null 2>&1; then
  pipehook pipelines update --file examples/pipeline.json
else
  pipehook pipelines create --file examples/pipeline.json
fi

# 2. Its GitHub webhook: prints the trigger URL to give GitHub (Payload URL, content type application/json).
PUT=$(pipehook webhooks put --file examples/webhook.json)
echo "$PUT"
TRIGGER_URL=$(echo "$PUT" | sed -n 's/^URL: //p')

# 3. An outbound hook that is told about pipeline runs.
if pipehook hooks get quickstart >/dev/null 2>&1; then
  pipehook hooks update quickstart --file examples/hook.json
else
  pipehook hooks create --file examples/hook.json
fi
if [ -n "${RECEIVER_URL:-}" ]; then
  printf '{"payloadUrl": "%s"}\n' "$RECEIVER_URL" | pipehook hooks update quickstart --file -
fi

# 4. Be GitHub: sign a real push payload with the webhook's SecretToken and POST it to the trigger URL.
SECRET=$(sed -n 's/.*"SecretToken": *"\([^"]*\)".*/\1/p' examples/webhook.json)
SIGNATURE=$(openssl dgst -sha256 -hmac "$SECRET" < examples/github-push.json | sed 's/^.* //')
ANSWER=$(curl -sS -X POST "$TRIGGER_URL" \
  -H 'Content-Type: application/json' \
  -H 'X-GitHub-Event: push' \
  -H "X-GitHub-Delivery: quickstart-$(date +%s)-$$" \
  -H "X-Hub-Signature-256: sha256=$SIGNATURE" \
  --data-binary @examples/github-push.json)
echo "$ANSWER"
EXECUTION=$(echo "$ANSWER" | sed -n 's/.*"pipelineExecutionId": *"\([^"]*\)".*/\1/p')
if [ -z "$EXECUTION" ]; then
  echo "quickstart: the push did not start a run (see: pipehook inbound list)" >&2
  exit 1
fi

# 5. Follow the run's log until it ends, then show the execution.
pipehook logs hello "$EXECUTION" --follow
SHOWN=$(pipehook executions get hello "$EXECUTION")
echo "$SHOWN"
if ! echo "$SHOWN" | grep -q '^Status: *Succeeded$'; then
  echo "quickstart: the run did not succeed" >&2
  exit 1
fi

# 6. What the outbound hook delivered (deliveries are sent in the background: give them a moment).
sleep 2
pipehook deliveries list quickstart
