#!/usr/bin/env bash
# harbor-sync.sh — what a platform engineer would write instead of harbor-secrets: fetch a
# Harbor Lockers token per (environment, scope) with client_secret_post and write the
# schema-1 record to Vault/OpenBao KV v2, SSM Parameter Store and an env file. Run from cron
# every minute. Tools: bash, curl, jq, bao (or vault) and the AWS CLI.
#
# Written to keep secrets out of argv (ps, /proc/PID/cmdline are world-readable):
#   * the client secret goes to curl in a 0600 file (--data-binary @file), built by jq from
#     the environment — not `curl -d "client_secret=$SECRET"`;
#   * the access token reaches bao and aws through 0600 files (@file, file://) — not
#     `bao kv put … access_token="$TOKEN"` or `aws ssm put-parameter --value "$RECORD"`.
# What it does NOT do (harbor-secrets does): read before writing (it rewrites every token on
# every run), refuse to replace a newer token with an older one (overlapping runs can go
# backwards), check-and-set on KV v2, lock the SSM parameter or the env file, retry only
# what is retryable, or report per-token failures while carrying on with the others.
#
# Environment:
#   HARBOR_CLIENT_ID, HARBOR_CLIENT_SECRET      the Harbor API client
#   HARBOR_ENVIRONMENTS                         default "sandbox production"
#   HARBOR_SCOPES                               default "service_provider tower_access"
#   HARBOR_<ENV>_ACCOUNTS_URL                   default Harbor's documented accounts URLs
#   BAO_ADDR, BAO_TOKEN                         OpenBao/Vault (VAULT_ADDR/VAULT_TOKEN for vault)
#   HARBOR_KV_MOUNT                             default "secret"
#   HARBOR_ENV_FILE                             default ./harbor.env
#   AWS_* as usual for the AWS CLI (AWS_ENDPOINT_URL for a local endpoint)
#   BAO, AWS                                    the binaries (default: bao, aws on PATH)
set -euo pipefail
umask 077

: "${HARBOR_CLIENT_ID:?set HARBOR_CLIENT_ID}"
: "${HARBOR_CLIENT_SECRET:?set HARBOR_CLIENT_SECRET}"
export HARBOR_CLIENT_ID HARBOR_CLIENT_SECRET
environments=${HARBOR_ENVIRONMENTS:-sandbox production}
scopes=${HARBOR_SCOPES:-service_provider tower_access}
kv_mount=${HARBOR_KV_MOUNT:-secret}
env_file=${HARBOR_ENV_FILE:-harbor.env}
bao=${BAO:-bao}
aws=${AWS:-aws}
token_path=/realms/harbor/protocol/openid-connect/token

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
: >"$work/env-lines"
managed_names=()

for environment in $environments; do
  upper_env=${environment^^}
  accounts_var="HARBOR_${upper_env}_ACCOUNTS_URL"
  case $environment in
    production) default_accounts=https://accounts.harborlockers.com ;;
    sandbox) default_accounts=https://accounts.sandbox.harborlockers.com ;;
    *) default_accounts= ;;
  esac
  token_url="${!accounts_var:-$default_accounts}$token_path"

  for scope in $scopes; do
    # The form body is built from the environment, so the secret is never an argument.
    SCOPE=$scope jq -jn '"grant_type=client_credentials"
      + "&scope=\(env.SCOPE | @uri)"
      + "&client_id=\(env.HARBOR_CLIENT_ID | @uri)"
      + "&client_secret=\(env.HARBOR_CLIENT_SECRET | @uri)"' >"$work/form"
    printf -v issued '%(%s)T' -1 # taken before the request, so the expiry errs early
    curl --silent --show-error --fail --proto =http,https --max-redirs 0 \
      --connect-timeout 5 --max-time 15 --retry 3 \
      -H 'Content-Type: application/x-www-form-urlencoded' -H 'Accept: application/json' \
      --data-binary "@$work/form" -o "$work/response.json" "$token_url"

    # Validate and build the schema-1 record (the very object harbor-secrets stores, so
    # readers cannot tell the difference); the token goes file to file, never via argv.
    jq -e --arg scope "$scope" --arg environment "$environment" \
      --arg client_id "$HARBOR_CLIENT_ID" --arg issuer "$token_url" \
      --arg written_by "${HARBOR_SECRETS_WRITER:-$HOSTNAME}" --argjson issued "$issued" '
      if (.access_token | type) != "string" or .access_token == ""
         or (.expires_in | type) != "number" or .expires_in <= 0
      then error("unusable token response") else . end
      | {access_token, token_type: "Bearer", scope: $scope, environment: $environment,
         expires_at: ($issued + .expires_in | todate), issued_at: ($issued | todate),
         expires_in, client_id: $client_id, issuer: $issuer,
         managed_by: "harbor-secrets", schema: 1, written_by: $written_by}' "$work/response.json" >"$work/record.json"

    "$bao" kv put -mount="$kv_mount" "harbor/$environment/$scope" "@$work/record.json" >/dev/null
    "$aws" ssm put-parameter --name "/harbor/$environment/$scope" --type SecureString \
      --overwrite --value "file://$work/record.json" >/dev/null

    name="HARBOR_${upper_env}_${scope^^}"
    managed_names+=("${name}_ACCESS_TOKEN" "${name}_EXPIRES_AT")
    jq -r --arg name "$name" '"\($name)_ACCESS_TOKEN=\u0027\(.access_token)\u0027",
      "\($name)_EXPIRES_AT=\u0027\(.expires_at)\u0027"' "$work/record.json" >>"$work/env-lines"
  done
done

# Env file: keep everyone else's lines, replace ours, swap the file in atomically (0600).
pattern="^(export )?($(IFS='|'; echo "${managed_names[*]}"))="
tmp=$(mktemp "$(dirname "$env_file")/.harbor-env.XXXXXX")
{ grep -Ev "$pattern" "$env_file" 2>/dev/null || true; cat "$work/env-lines"; } >"$tmp"
chmod 600 "$tmp"
mv -f "$tmp" "$env_file"
