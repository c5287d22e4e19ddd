#!/usr/bin/env bash
# The script path for tenants where the Microsoft Graph Bicep extension cannot run (national clouds, or a pipeline
# identity without Graph rights): what infra/modules/entra.bicep and engineCallers.bicep do, with `az rest` against
# Microsoft Graph, from the same files (infra/permissions.json, infra/appRoles.json, infra/apiScope.json). Idempotent:
# it reads before it writes, grants only what is missing, and prints what it granted, what was there, and what is
# granted beyond the list.
# --mode says what the engine runs in (its RESPONDER_MODE), as main.bicep's responderMode does: audit (the default, as
# there) grants the capabilities' read permissions only; enforce grants their write permissions too. It never removes
# a permission: after enforce, an audit run names the write permissions the identity still holds, for you to remove.
#
#   grant-permissions.sh --principal-id <engine identity object id> [--mode audit|enforce]
#                        [--capabilities enrichment,disableUser,...] [--no-defender] [--dry-run]
#   grant-permissions.sh --register-api [--api-name sentinel-responder] [--pre-authorize <client id> ...]
#   grant-permissions.sh [--api-name <name>] --caller <object id of a user, group or app>=<app role> [--caller ...]
#
# Needs: az (signed in to the tenant: `az login`; `az cloud set` first in a national cloud) and jq. Who may run it:
# Privileged Role Administrator or Global Administrator for Microsoft Graph permissions; Cloud Application
# Administrator for the API registration, Defender permissions and the callers' app roles.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
permissions_file="$here/../permissions.json"
roles_file="$here/../appRoles.json"
scope_file="$here/../apiScope.json"

principal_id=""
capabilities=""
# audit unless told: an identity short of a write fails loudly when the engine enforces (the ledger and `responder
# doctor` name it); one holding writes while it audits fails silently, as over-privilege does.
mode="audit"
defender=1
dry_run=0
register_api=0
api_name="sentinel-responder"  # main.bicep's apiName default: the same app ID URI
api_display_name="Sentinel Responder API"
callers=()
pre_authorized=()

usage() { sed -n '2,/^set -euo/{/^set -euo/!p}' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --principal-id) principal_id="${2:?}"; shift 2 ;;
    --capabilities) capabilities="${2:?}"; shift 2 ;;
    --mode) mode="${2:?}"; shift 2 ;;
    --no-defender) defender=0; shift ;;
    --dry-run) dry_run=1; shift ;;
    --register-api) register_api=1; shift ;;
    --api-name) api_name="${2:?}"; shift 2 ;;
    --caller) callers+=("${2:?}"); shift 2 ;;
    --pre-authorize) pre_authorized+=("${2:?}"); shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "unknown option: $1" >&2; usage ;;
  esac
done

command -v jq >/dev/null || { echo "jq is required" >&2; exit 2; }
[[ "$mode" == audit || "$mode" == enforce ]] || { echo "unknown mode: $mode (audit or enforce)" >&2; exit 2; }
# Clients whose users need no consent for the API's scope: the Azure CLI, and any --pre-authorize names (entra.bicep).
pre_authorized=(04b07795-8ddb-461a-bbee-02f9e1bf7b46 "${pre_authorized[@]}")

# The capabilities to grant: every one in permissions.json unless --capabilities names some.
all_capabilities="$(jq -r '.capabilities | keys_unsorted | join(",")' "$permissions_file")"
capabilities="${capabilities:-$all_capabilities}"
for capability in ${capabilities//,/ }; do
  jq -e --arg c "$capability" '.capabilities | has($c)' "$permissions_file" >/dev/null ||
    { echo "unknown capability: $capability (one of $all_capabilities)" >&2; exit 2; }
done
capabilities_json="$(jq -cn --arg list "$capabilities" '$list | split(",") | map(select(. != ""))')"

# The permissions of an API ("graph" or "defender") that the capabilities need, each once, one a line: $2 names the
# lists, "read" or "write" (permissions.json: read is called in audit and enforce mode, write in enforce mode only).
permissions_of() {
  jq -r --arg api "$1" --argjson caps "$capabilities_json" --arg needs "$2" \
    '[.capabilities | to_entries[] | select(.key as $k | $caps | index($k)) | .value as $v
      | ($needs | split(" "))[] | $v[.][$api][]] | unique | .[]' \
    "$permissions_file"
}
# What this run grants: the reads, and in enforce mode the writes.
wanted() { if [[ $mode == enforce ]]; then permissions_of "$1" "read write"; else permissions_of "$1" read; fi; }
# The writes an audit-mode engine does not call.
withheld() { if [[ $mode == audit ]]; then permissions_of "$1" write; fi; }

apis=(graph)
[[ $defender -eq 1 ]] && apis+=(defender)

if [[ $dry_run -eq 1 ]]; then
  for api in "${apis[@]}"; do
    while read -r permission; do [[ -n "$permission" ]] && echo "would grant $api $permission"; done < <(wanted "$api")
  done
  for api in "${apis[@]}"; do
    while read -r permission; do
      [[ -n "$permission" ]] && echo "not granted in audit mode $api $permission: --mode enforce grants it"
    done < <(withheld "$api")
  done
  exit 0
fi

command -v az >/dev/null || { echo "the Azure CLI (az) is required" >&2; exit 2; }
graph="$(az cloud show --query endpoints.microsoftGraphResourceId -o tsv)"
graph="${graph%/}"

# GET a Graph URL (relative to /v1.0) and print the JSON.
graph_get() { az rest --method GET --uri "$graph/v1.0/$1" --headers "ConsistencyLevel=eventual"; }
# GET a Graph collection (relative to /v1.0) through every page, and print its items as one JSON array.
graph_all_pages() {
  local uri="$graph/v1.0/$1" page items="[]"
  while [[ -n "$uri" ]]; do
    page="$(az rest --method GET --uri "$uri" --headers "ConsistencyLevel=eventual")"
    items="$(jq -c --argjson so_far "$items" '$so_far + .value' <<<"$page")"
    uri="$(jq -r '."@odata.nextLink" // empty' <<<"$page")"
  done
  echo "$items"
}
graph_post() { az rest --method POST --uri "$graph/v1.0/$1" --headers "Content-Type=application/json" --body "$2" >/dev/null; }

# Give principal $1 the app role valued $3 on resource service principal $2 (JSON with id and appRoles), unless $5 (the
# principal's appRoleAssignments, as graph_all_pages prints them) holds it.
assign() {
  local principal="$1" resource_json="$2" value="$3" label="$4" held="$5"
  local resource_id role_id existing
  resource_id="$(jq -r '.id' <<<"$resource_json")"
  role_id="$(jq -r --arg v "$value" \
    '[.appRoles[] | select(.value == $v and (.allowedMemberTypes | index("Application")))][0].id // empty' <<<"$resource_json")"
  [[ -n "$role_id" ]] || { echo "$label: no application role $value on that service principal" >&2; return 1; }
  existing="$(jq -r --arg r "$resource_id" --arg a "$role_id" '[.[] | select(.resourceId == $r and .appRoleId == $a)] | length' <<<"$held")"
  if [[ "$existing" != "0" ]]; then
    echo "already granted  $label $value"
  else
    graph_post "servicePrincipals/$principal/appRoleAssignments" \
      "$(jq -cn --arg p "$principal" --arg r "$resource_id" --arg a "$role_id" '{principalId: $p, resourceId: $r, appRoleId: $a}')"
    echo "granted          $label $value"
  fi
}

# Give user, group or application $1 the engine's app role valued $3 ($2: the engine API's service principal JSON), unless
# it has it. Through the engine's appRoleAssignedTo, which takes every kind of principal (a user or group cannot be read
# as a service principal), and with any member type: Graph refuses a role the principal's kind may not hold.
assign_caller() {
  local principal="$1" engine_json="$2" value="$3"
  local engine_id role_id existing
  engine_id="$(jq -r '.id' <<<"$engine_json")"
  role_id="$(jq -r --arg v "$value" '[.appRoles[] | select(.value == $v)][0].id // empty' <<<"$engine_json")"
  [[ -n "$role_id" ]] || { echo "engine: no app role $value on its service principal" >&2; return 1; }
  existing="$(graph_all_pages "servicePrincipals/$engine_id/appRoleAssignedTo?\$top=999" |
    jq -r --arg p "$principal" --arg a "$role_id" '[.[] | select(.principalId == $p and .appRoleId == $a)] | length')"
  if [[ "$existing" != "0" ]]; then
    echo "already granted  engine $value to $principal"
  else
    graph_post "servicePrincipals/$engine_id/appRoleAssignedTo" \
      "$(jq -cn --arg p "$principal" --arg r "$engine_id" --arg a "$role_id" '{principalId: $p, resourceId: $r, appRoleId: $a}')"
    echo "granted          engine $value to $principal"
  fi
}

service_principal_by_app_id() { graph_get "servicePrincipals(appId='$1')?\$select=id,appId,appRoles"; }

if [[ $register_api -eq 1 ]]; then
  # The API registration as entra.bicep declares it: api://<tenant>/<name>, the app roles, v2 tokens, the scope and its
  # pre-authorized clients, assignment required.
  tenant="$(az account show --query tenantId -o tsv)"
  uri="api://$tenant/$api_name"
  app_id="$(az ad app list --identifier-uri "$uri" --query '[0].appId' -o tsv)"
  if [[ -z "$app_id" ]]; then
    app_id="$(az ad app create --display-name "$api_display_name" --sign-in-audience AzureADMyOrg \
      --identifier-uris "$uri" --query appId -o tsv)"
    echo "created app registration $api_display_name ($app_id)"
  else
    echo "found app registration $uri ($app_id)"
  fi
  object_id="$(az ad app show --id "$app_id" --query id -o tsv)"
  # Two writes, as entra.bicep declares it twice: Graph refuses a pre-authorization naming a scope the app lacks yet.
  az rest --method PATCH --uri "$graph/v1.0/applications/$object_id" --headers "Content-Type=application/json" \
    --body "$(jq -c --slurpfile scope "$scope_file" \
      '{appRoles: ., api: {requestedAccessTokenVersion: 2, oauth2PermissionScopes: $scope}}' "$roles_file")" >/dev/null
  clients_json="$(printf '%s\n' "${pre_authorized[@]}" | jq -Rsc 'split("\n") | map(select(. != "")) | unique')"
  az rest --method PATCH --uri "$graph/v1.0/applications/$object_id" --headers "Content-Type=application/json" \
    --body "$(jq -c --argjson clients "$clients_json" '. as $scope | {api: {requestedAccessTokenVersion: 2,
      oauth2PermissionScopes: [$scope], preAuthorizedApplications: [$clients[] | {appId: ., delegatedPermissionIds: [$scope.id]}]}}' \
      "$scope_file")" >/dev/null
  echo "app roles: $(jq -r 'map(.value) | join(", ")' "$roles_file")"
  echo "scope $(jq -r .value "$scope_file"), pre-authorized for: ${pre_authorized[*]}"
  sp_id="$(az ad sp list --filter "appId eq '$app_id'" --query '[0].id' -o tsv)"
  [[ -n "$sp_id" ]] || sp_id="$(az ad sp create --id "$app_id" --query id -o tsv)"
  az rest --method PATCH --uri "$graph/v1.0/servicePrincipals/$sp_id" --headers "Content-Type=application/json" \
    --body '{"appRoleAssignmentRequired": true}' >/dev/null
  echo "RESPONDER_AUDIENCE=$uri,$app_id"
  echo "Azure Security Insights service principal (relay.bicep sentinelAutomationPrincipalId):" \
    "$(az ad sp list --filter "appId eq '98785600-1bb7-4fb9-b9fa-19afe2c8a360'" --query '[0].id' -o tsv)"
fi

if [[ -n "$principal_id" ]]; then
  # Read once: what this run grants is on the list, so neither the checks nor the report below need a fresh copy.
  held="$(graph_all_pages "servicePrincipals/$principal_id/appRoleAssignments")"
  for api in "${apis[@]}"; do
    app_id="$(jq -r --arg api "$api" '.apis[$api]' "$permissions_file")"
    resource_json="$(service_principal_by_app_id "$app_id")"
    mapfile -t permissions < <(wanted "$api")
    for permission in "${permissions[@]}"; do
      [[ -n "$permission" ]] && assign "$principal_id" "$resource_json" "$permission" "$api" "$held"
    done
    # Least privilege: say what the identity holds on this API beyond the list (left as is: it may serve another need).
    # In audit mode that names the capabilities' writes a run in enforce mode granted: nothing withdraws them but you.
    mapfile -t writes < <(withheld "$api")
    jq -r --argjson sp "$resource_json" --argjson want "$(printf '%s\n' "${permissions[@]}" | jq -Rn '[inputs]')" \
      --argjson writes "$(printf '%s\n' "${writes[@]}" | jq -Rn '[inputs | select(. != "")]')" --arg api "$api" \
      '.[] | select(.resourceId == $sp.id) | .appRoleId as $a | ($sp.appRoles[] | select(.id == $a) | .value)
       | select(. as $v | $want | index($v) | not)
       | if (. as $v | $writes | index($v)) then
           "beyond the list \($api) \(.): a write the engine calls only in enforce mode; remove it while it audits"
         else "beyond the list \($api) \(.): remove it if nothing else needs it" end' <<<"$held"
  done
  if [[ $mode == audit ]]; then
    echo "audit mode: read permissions only. Granting never withdraws: remove a write listed above by hand;" \
      "run with --mode enforce when the engine is switched to enforce."
  fi
fi

if [[ ${#callers[@]} -gt 0 ]]; then
  tenant="$(az account show --query tenantId -o tsv)"
  engine_app_id="$(az ad app list --identifier-uri "api://$tenant/$api_name" --query '[0].appId' -o tsv)"
  [[ -n "$engine_app_id" ]] || { echo "no app registration api://$tenant/$api_name: run --register-api first" >&2; exit 1; }
  engine_json="$(service_principal_by_app_id "$engine_app_id")"
  for caller in "${callers[@]}"; do
    role="${caller#*=}"
    jq -e --arg r "$role" 'map(.value) | index($r)' "$roles_file" >/dev/null ||
      { echo "unknown app role $role (one of $(jq -r 'map(.value) | join(", ")' "$roles_file"))" >&2; exit 2; }
    assign_caller "${caller%%=*}" "$engine_json" "$role"
  done
fi
