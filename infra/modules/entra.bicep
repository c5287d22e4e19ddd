// The engine's API registration (its app roles are what callers are authorized by) and the application permissions
// of the engine's managed identity on Microsoft Graph and Defender for Endpoint, through the Microsoft Graph Bicep
// extension. That extension deploys in the public cloud only (https://learn.microsoft.com/graph/templates/limitations):
// elsewhere, infra/scripts/grant-permissions.sh does the same from the same infra/permissions.json.
//
// Deploying it needs an Entra role besides Azure rights: Privileged Role Administrator (or Global Administrator) to
// grant Microsoft Graph application permissions; a Cloud Application Administrator can do the rest but not that
// (https://learn.microsoft.com/entra/identity/enterprise-apps/grant-admin-consent).
extension microsoftGraphV1

@description('Alternate key of the API registration: a redeployment with the same name updates the same app.')
param appUniqueName string = 'sentinel-responder'

@description('Display name of the API registration and its service principal.')
param appDisplayName string = 'Sentinel Responder API'

@description('Principal (object) id of the engine\'s managed identity: the Function App runs as it.')
param enginePrincipalId string

@description('What the policy lets the engine do; each capability is granted the permissions it needs and no more (infra/permissions.json, generated from shared/actions/permissions.ts). A plannable action brings its rollback. Enable groupMembership when the policy names groups.')
@allowed([
  'enrichment'
  'groupMembership'
  'disableUser'
  'revokeSessions'
  'confirmCompromised'
  'requirePimReapproval'
  'isolateDevice'
])
param capabilities array = [
  'enrichment'
  'groupMembership'
  'disableUser'
  'revokeSessions'
  'confirmCompromised'
  'requirePimReapproval'
  'isolateDevice'
]

@description('False in a tenant without Microsoft Defender for Endpoint: no Defender permission is granted (and isolateDevice cannot work).')
param defenderForEndpoint bool = true

@description('Whether the engine may write (main.bicep: responderMode enforce). The capabilities\' read permissions are granted always, since audit mode reads what it would change; their write permissions only when true. false does not withdraw a write granted before: a deployment adds, it never deletes.')
param engineMayWrite bool = false

@description('Client applications pre-authorized for the API\'s delegated scope besides the Azure CLI, which always is (az account get-access-token, and the responder commands through DefaultAzureCredential): their users need no consent to ask a token for the engine.')
param preAuthorizedClientIds array = []

var catalogue = loadJsonContent('../permissions.json')
var enabled = filter(items(catalogue.capabilities), capability => contains(capabilities, capability.key))
// Each permission once, however many capabilities need it: the reads always, the writes only if the engine may write.
var graphReads = reduce(map(enabled, capability => capability.value.read.graph), [], (all, next) => union(all, next))
var graphWrites = reduce(map(enabled, capability => capability.value.write.graph), [], (all, next) => union(all, next))
var defenderReads = reduce(map(enabled, capability => capability.value.read.defender), [], (all, next) => union(all, next))
var defenderWrites = reduce(map(enabled, capability => capability.value.write.defender), [], (all, next) => union(all, next))
var graphPermissions = union(graphReads, engineMayWrite ? graphWrites : [])
var defenderPermissions = defenderForEndpoint ? union(defenderReads, engineMayWrite ? defenderWrites : []) : []

// The app's roles (infra/appRoles.json, which the script path reads too): the values shared/auth/caller.ts authorizes
// on. Their ids are fixed so that a redeployment keeps every assignment; never give an id another meaning.
var appRoles = loadJsonContent('../appRoles.json')

// api://<tenant id>/<name> is a secure identifier URI pattern and needs no appId, which the app does not know until it
// exists (https://learn.microsoft.com/entra/identity-platform/identifier-uri-restrictions).
var identifierUri = 'api://${tenant().tenantId}/${appUniqueName}'

// The API's one delegated scope (infra/apiScope.json, which the script path reads too). A user's token for the engine
// needs its client to hold some scope of the API, or Entra refuses it (AADSTS65001); the engine authorizes on app roles
// only, so the scope grants nothing by itself. Its id is fixed: an enabled scope cannot be changed or removed.
var apiScope = loadJsonContent('../apiScope.json')

// The Azure CLI's client id, the same in every tenant: the analysts' commands ask their tokens through it.
var azureCliClientId = '04b07795-8ddb-461a-bbee-02f9e1bf7b46'

resource api 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: appUniqueName
  displayName: appDisplayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [identifierUri]
  appRoles: appRoles
  api: {
    // v2 tokens carry the client id as `aud`; RESPONDER_AUDIENCE lists it beside the app ID URI (for v1 tokens).
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [apiScope]
  }
}

// The same registration again, now pre-authorizing its clients for the scope: Graph refuses a pre-authorization naming
// a scope the app does not have yet, as when both arrive in one write (microsoftgraph/microsoft-graph-docs#20177), so
// the scope is declared first, above.
resource apiClients 'Microsoft.Graph/applications@v1.0' = {
  uniqueName: appUniqueName
  displayName: appDisplayName
  signInAudience: 'AzureADMyOrg'
  identifierUris: [identifierUri]
  appRoles: appRoles
  api: {
    requestedAccessTokenVersion: 2
    oauth2PermissionScopes: [apiScope]
    preAuthorizedApplications: map(union([azureCliClientId], preAuthorizedClientIds), clientId => { appId: clientId, delegatedPermissionIds: [apiScope.id] })
  }
  dependsOn: [api]
}

resource apiPrincipal 'Microsoft.Graph/servicePrincipals@v1.0' = {
  appId: apiClients.appId
  // Only principals given one of its roles can get a token for the engine at all.
  appRoleAssignmentRequired: true
}

resource graph 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: catalogue.apis.graph
}

// Read only when a Defender permission is granted; the grants below loop over that same list, so `!` holds (BCP318).
resource defender 'Microsoft.Graph/servicePrincipals@v1.0' existing = if (!empty(defenderPermissions)) {
  appId: catalogue.apis.defender
}

// The service principal through which Sentinel runs playbooks: "Azure Security Insights", one app id in every tenant
// (Microsoft Entra docs, "Microsoft service principal sign-in logs", first-party application table).
resource sentinelAutomation 'Microsoft.Graph/servicePrincipals@v1.0' existing = {
  appId: '98785600-1bb7-4fb9-b9fa-19afe2c8a360'
}

resource graphGrant 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for permission in graphPermissions: {
    principalId: enginePrincipalId
    resourceId: graph.id
    appRoleId: filter(graph.appRoles, role => role.value == permission && contains(role.allowedMemberTypes, 'Application'))[0].id
  }
]

resource defenderGrant 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for permission in defenderPermissions: {
    principalId: enginePrincipalId
    resourceId: defender!.id
    appRoleId: filter(defender!.appRoles, role => role.value == permission && contains(role.allowedMemberTypes, 'Application'))[0].id
  }
]

@description('The API registration\'s application (client) id.')
output appId string = apiClients.appId

@description('The app ID URI: the audience a caller asks a token for (the relay Logic Apps\' HTTP authentication).')
output identifierUri string = identifierUri

@description('RESPONDER_AUDIENCE: the app ID URI (v1 tokens) and the client id (v2 tokens).')
output responderAudience string = '${identifierUri},${apiClients.appId}'

@description('The issuer of the API\'s v2 tokens, for App Service Authentication (RESPONDER_AUTH=easyauth).')
output issuer string = '${environment().authentication.loginEndpoint}${tenant().tenantId}/v2.0'

@description('Object id of the API\'s service principal: where callers\' app roles are assigned (engineCallers.bicep).')
output servicePrincipalId string = apiPrincipal.id

@description('The API\'s app role ids by value, for engineCallers.bicep.')
output appRoleIds object = toObject(appRoles, role => role.value, role => role.id)

@description('Object id of the Azure Security Insights service principal, which relay.bicep lets run the relay playbooks.')
output sentinelAutomationPrincipalId string = sentinelAutomation.id

@description('The Microsoft Graph application permissions granted to the engine\'s identity.')
output graphPermissions array = graphPermissions

@description('The Defender for Endpoint application permissions granted to the engine\'s identity.')
output defenderPermissions array = defenderPermissions

@description('The write permissions of the enabled capabilities this deployment did not grant (engineMayWrite false): the engine needs them to enforce. Any granted by an earlier deployment stay.')
output withheldPermissions object = {
  graph: engineMayWrite ? [] : graphWrites
  defender: engineMayWrite || !defenderForEndpoint ? [] : defenderWrites
}
