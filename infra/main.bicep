// Sentinel Responder in one resource group: identity, storage, queue, risk-log hub, telemetry and its workbook, the
// Function App and its Azure roles; with registerApi, the API registration and the identity's Graph / Defender
// permissions (modules/entra.bicep, which needs Privileged Role Administrator); with deployRelays, the relay Logic Apps
// and Sentinel's automation rules (modules/relay.bicep). The tenant-scope diagnostic setting (tenant/) is deployed on
// its own. The operator's guide: docs/deploy.md.
targetScope = 'resourceGroup'

// ---------------------------------------------------------------------------------------------------------------------
// Where and what
// ---------------------------------------------------------------------------------------------------------------------

@description('Azure region for every resource; one that offers Flex Consumption.')
param location string = resourceGroup().location

@description('Short name the resource names start with (letters and digits).')
@minLength(2)
@maxLength(12)
param namePrefix string = 'responder'

@description('Resource id of the Log Analytics workspace Microsoft Sentinel runs on (any resource group or subscription of this tenant): the app gets Microsoft Sentinel Responder there, and missedIncidents lists its incidents (RESPONDER_SENTINEL_WORKSPACES).')
param sentinelWorkspaceId string

@description('Tags for every resource.')
param tags object = {}

// ---------------------------------------------------------------------------------------------------------------------
// Hosting
// ---------------------------------------------------------------------------------------------------------------------

@description('Memory of each Flex Consumption instance, in MB. At 512 the Node worker\'s heap is capped at 256 MB (languageWorkers__node__arguments; docs/performance.md).')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 512

@description('Most instances the app scales out to. The engine paces itself to the APIs\' budgets across all instances, so more instances do not contain faster.')
@minValue(40)
@maxValue(1000)
param maximumInstanceCount int = 40

// Node.js 20 reached its end of life in April 2026; 22 is the Flex Consumption stack's default (functionAppStacks).
@description('Node.js version of the worker.')
@allowed(['22'])
param nodeVersion string = '22'

@description('Service Bus tier: Standard, or Premium for isolation and predictable latency.')
@allowed(['Standard', 'Premium'])
param serviceBusSku string = 'Standard'

@description('The Event Hub ID Protection\'s diagnostic setting streams risk logs to (RESPONDER_RISK_EVENT_HUB).')
param riskEventHubName string = 'idprotection-risk'

@description('Days the app\'s own Log Analytics workspace keeps its logs.')
@minValue(30)
@maxValue(730)
param logRetentionInDays int = 30

// ---------------------------------------------------------------------------------------------------------------------
// Identity of callers and clouds (docs/configuration.md)
// ---------------------------------------------------------------------------------------------------------------------

@description('AZURE_TENANT_ID: the Entra tenant whose tokens the engine accepts.')
param tenantId string = tenant().tenantId

@description('AZURE_CLOUD: the endpoint presets (shared/cloud.ts).')
@allowed(['AzurePublicCloud', 'AzureUSGovernment', 'AzureUSGovernmentDoD', 'AzureChinaCloud'])
param cloud string = 'AzurePublicCloud'

@description('AZURE_AUTHORITY_HOST, only to override the cloud\'s preset (https origin); empty: the preset.')
param authorityHost string = ''

@description('GRAPH_ENDPOINT, only to override the cloud\'s preset (https origin); empty: the preset.')
param graphEndpoint string = ''

@description('DEFENDER_ENDPOINT, only to override the cloud\'s preset, e.g. a Defender geo host; empty: the preset.')
param defenderEndpoint string = ''

@description('ARM_ENDPOINT, only to override the cloud\'s preset (https origin); empty: the preset.')
param armEndpoint string = ''

@description('The engine API\'s app ID URI, which callers request tokens for (RESPONDER_AUDIENCE). Empty: api://<tenant id>/<apiName>, the URI modules/entra.bicep registers.')
param apiAudience string = ''

@description('The API registration\'s unique name (its app ID URI ends with it): a redeployment with the same name updates the same app.')
param apiName string = 'sentinel-responder'

@description('With registerApi: client applications pre-authorized for the API\'s scope besides the Azure CLI (client ids), so that their users need no consent.')
param preAuthorizedClientIds array = []

@description('Register the engine API and grant its identity Graph and Defender permissions here, through the Microsoft Graph Bicep extension (public cloud only; needs Privileged Role Administrator). false: infra/scripts/grant-permissions.sh does it, and apiClientId / sentinelAutomationPrincipalId come from its output.')
param registerApi bool = true

@description('What the policy lets the engine do (modules/entra.bicep): each capability is granted the permissions it needs and no more: its reads always, its writes only when responderMode is enforce.')
param capabilities array = [
  'enrichment'
  'disableUser'
  'revokeSessions'
  'confirmCompromised'
  'requirePimReapproval'
  'isolateDevice'
]

@description('Grant Defender for Endpoint permissions (false where the tenant has no Defender for Endpoint).')
param defenderForEndpoint bool = true

@description('Deploy the relay Logic Apps and Sentinel automation rules that post incidents and analysts\' requests to the engine.')
param deployRelays bool = true

@description('Relay incident updates too, not only new incidents (the engine decides each update; the ledger acts once).')
param relayOnIncidentUpdate bool = true

@description('Analysts\' groups (object ids) that may run the entity relays (Microsoft Sentinel Playbook Operator on them).')
param playbookOperatorPrincipalIds array = []

@description('Object ids of users or groups given Responder.Read on the engine: analysts and tools that read decisions, plans, health, dead letters and the ledger (a group needs Entra ID P1). With registerApi false: grant-permissions.sh --caller.')
param readerPrincipalIds array = []

@description('Object ids of users or groups given Responder.Act: analysts who request actions, rollbacks, replays and sweeps (give them Responder.Read too, to see what they asked for). With registerApi false: grant-permissions.sh --caller.')
param actorPrincipalIds array = []

@description('Object ids of users or groups given Responder.Approve: analysts who approve or deny held actions, never their own request. With registerApi false: grant-permissions.sh --caller.')
param approverPrincipalIds array = []

@description('With registerApi false: the object id of the Azure Security Insights service principal in this tenant (grant-permissions.sh prints it).')
param sentinelAutomationPrincipalId string = ''

@description('The engine API app registration\'s client id, accepted as an audience too (v2 tokens carry it); empty: the URI only.')
param apiClientId string = ''

@description('RESPONDER_TOKEN_ISSUERS: accepted token issuers, comma-separated; empty: the two derived from the authority and tenant.')
param tokenIssuers string = ''

@description('RESPONDER_AUTH: entra validates bearer tokens itself; easyauth trusts App Service Authentication (which must then be configured on the app).')
@allowed(['entra', 'easyauth'])
param responderAuth string = 'entra'

// ---------------------------------------------------------------------------------------------------------------------
// The engine's behaviour (docs/configuration.md)
// ---------------------------------------------------------------------------------------------------------------------

@description('RESPONDER_MODE: audit decides and records but calls no write API, whatever the policy says, and its identity is granted the capabilities\' read permissions only; enforce lets the policy decide and grants their write permissions too. A first deployment starts in audit: switch once the audit trail shows the decisions you want. Back to audit does not withdraw the writes: a deployment never deletes.')
@allowed(['audit', 'enforce'])
param responderMode string = 'audit'

@description('RESPONDER_POLICY: the policy as YAML (wins over policyPath); empty: policyPath, else the built-in default policy.')
param policyYaml string = ''

@description('RESPONDER_POLICY_PATH: a policy file in the deployed package; empty: the built-in default policy.')
param policyPath string = ''

@description('RESPONDER_ENRICHMENT: on reads user risk, privilege, groups and device data before deciding; off decides on the signal alone.')
@allowed(['on', 'off'])
param enrichment string = 'on'

@description('RESPONDER_MAX_BODY_BYTES: request body cap (413 above it).')
@minValue(1024)
@maxValue(67108864)
param maxBodyBytes int = 1048576

@description('LOG_LEVEL: pino level.')
@allowed(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
param logLevel string = 'info'

@description('RESPONDER_LEDGER_TABLE: the ledger table (created by this template).')
@minLength(3)
@maxLength(63)
param ledgerTableName string = 'actionledger'

@description('RESPONDER_RATE_LIMITS: API budgets over the documented defaults, e.g. defender=100/60s+1500/1h; empty: the defaults.')
param rateLimits string = ''

@description('RESPONDER_FOLLOW_UP_SECONDS: wait before reading a pending Defender machine action again.')
@minValue(1)
@maxValue(3600)
param followUpSeconds int = 30

@description('RESPONDER_RETRY_BASE_SECONDS: the retry backoff\'s first ceiling (doubles per attempt, capped at 15 minutes).')
@minValue(1)
@maxValue(600)
param retryBaseSeconds int = 10

@description('RESPONDER_RUNNING_LEASE_SECONDS and the actions queue\'s lock duration, one value: how long a claimed action stays its worker\'s without a renewal. Service Bus allows 5 to 300 seconds.')
@minValue(5)
@maxValue(300)
param runningLeaseSeconds int = 60

@description('RESPONDER_SWEEP_RISKYUSERS: when the riskyUsers sweep runs (NCRONTAB, six fields, UTC).')
param sweepRiskyUsers string = '0 */30 * * * *'

@description('RESPONDER_SWEEP_STUCKACTIONS: when the stuckActions sweep runs.')
param sweepStuckActions string = '0 7,37 * * * *'

@description('RESPONDER_SWEEP_MISSEDINCIDENTS: when the missedIncidents sweep runs.')
param sweepMissedIncidents string = '0 45 * * * *'

@description('RESPONDER_SWEEP_MISSEDINCIDENTS_HOURS: how far back missedIncidents looks.')
@minValue(1)
@maxValue(168)
param missedIncidentsHours int = 24

@description('RESPONDER_SWEEP_FALSEPOSITIVES: when the falsePositives sweep runs.')
param sweepFalsePositives string = '0 20 * * * *'

@description('RESPONDER_SWEEP_PRIVILEGEDRIFT: when the privilegeDrift sweep runs.')
param sweepPrivilegeDrift string = '0 50 * * * *'

// ---------------------------------------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------------------------------------

var token = toLower(uniqueString(resourceGroup().id, namePrefix))
var prefix = toLower(namePrefix)
var names = {
  identity: 'id-${prefix}-${token}'
  storage: take('st${prefix}${token}', 24)
  deploymentContainer: 'app-package'
  serviceBus: 'sb-${prefix}-${token}'
  eventHubs: 'evhns-${prefix}-${token}'
  workspace: 'log-${prefix}-${token}'
  appInsights: 'appi-${prefix}-${token}'
  plan: 'plan-${prefix}-${token}'
  app: 'func-${prefix}-${token}'
}
var audience = empty(apiAudience) ? 'api://${tenantId}/${apiName}' : apiAudience

// /subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.OperationalInsights/workspaces/{name}
var sentinelWorkspace = split(sentinelWorkspaceId, '/')

// ---------------------------------------------------------------------------------------------------------------------
// Resources
// ---------------------------------------------------------------------------------------------------------------------

module identity 'modules/identity.bicep' = {
  name: 'identity'
  params: { location: location, name: names.identity, tags: tags }
}

module storage 'modules/storage.bicep' = {
  name: 'storage'
  params: {
    location: location
    name: names.storage
    deploymentContainerName: names.deploymentContainer
    ledgerTableName: ledgerTableName
    principalId: identity.outputs.principalId
    tags: tags
  }
}

module serviceBus 'modules/serviceBus.bicep' = {
  name: 'serviceBus'
  params: {
    location: location
    name: names.serviceBus
    sku: serviceBusSku
    lockDurationSeconds: runningLeaseSeconds
    principalId: identity.outputs.principalId
    tags: tags
  }
}

module eventHubs 'modules/eventHubs.bicep' = {
  name: 'eventHubs'
  params: {
    location: location
    name: names.eventHubs
    hubName: riskEventHubName
    principalId: identity.outputs.principalId
    tags: tags
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    workspaceName: names.workspace
    appInsightsName: names.appInsights
    retentionInDays: logRetentionInDays
    principalId: identity.outputs.principalId
    tags: tags
  }
}

module sentinelRole 'modules/sentinelRole.bicep' = {
  name: 'sentinelRole'
  scope: resourceGroup(sentinelWorkspace[2], sentinelWorkspace[4])
  params: {
    workspaceName: last(sentinelWorkspace)
    principalId: identity.outputs.principalId
  }
}

// Every setting the engine reads (shared/config.ts, docs/configuration.md) and the host's identity-based connections.
// No key and no connection string: each connection names a host and the identity (`__credential`, `__clientId`).
var appSettings = {
  // DefaultAzureCredential's managed identity: the user-assigned one (@azure/identity reads AZURE_CLIENT_ID).
  AZURE_CLIENT_ID: identity.outputs.clientId
  AZURE_TENANT_ID: tenantId
  AZURE_CLOUD: cloud
  AZURE_AUTHORITY_HOST: authorityHost
  GRAPH_ENDPOINT: graphEndpoint
  DEFENDER_ENDPOINT: defenderEndpoint
  ARM_ENDPOINT: armEndpoint
  RESPONDER_AUDIENCE: registerApi ? entra!.outputs.responderAudience : (empty(apiClientId) ? audience : '${audience},${apiClientId}')
  RESPONDER_TOKEN_ISSUERS: tokenIssuers
  RESPONDER_AUTH: responderAuth
  RESPONDER_MODE: responderMode
  RESPONDER_POLICY: policyYaml
  RESPONDER_POLICY_PATH: policyPath
  // The engine never acts on its own identity, whatever a policy or an analyst asks.
  RESPONDER_IDENTITY_OBJECT_IDS: identity.outputs.principalId
  RESPONDER_ENRICHMENT: enrichment
  RESPONDER_MAX_BODY_BYTES: string(maxBodyBytes)
  LOG_LEVEL: logLevel
  RESPONDER_LEDGER_TABLE: ledgerTableName
  RESPONDER_RATE_LIMITS: rateLimits
  RESPONDER_FOLLOW_UP_SECONDS: string(followUpSeconds)
  RESPONDER_RETRY_BASE_SECONDS: string(retryBaseSeconds)
  // The same parameter sets the queue's lockDuration (modules/serviceBus.bicep).
  RESPONDER_RUNNING_LEASE_SECONDS: string(runningLeaseSeconds)
  // Compressed clocks are for drills on the sandbox; the engine refuses anything but 1 in Azure.
  RESPONDER_TIME_SCALE: '1'
  RESPONDER_SENTINEL_WORKSPACES: sentinelWorkspaceId
  RESPONDER_SWEEP_RISKYUSERS: sweepRiskyUsers
  RESPONDER_SWEEP_STUCKACTIONS: sweepStuckActions
  RESPONDER_SWEEP_MISSEDINCIDENTS: sweepMissedIncidents
  RESPONDER_SWEEP_MISSEDINCIDENTS_HOURS: string(missedIncidentsHours)
  RESPONDER_SWEEP_FALSEPOSITIVES: sweepFalsePositives
  RESPONDER_SWEEP_PRIVILEGEDRIFT: sweepPrivilegeDrift

  // Host storage and the ledger. Service URIs rather than __accountName, which assumes the public cloud's DNS suffix
  // (the engine's own reading of it does too: shared/config.ts storageSetting).
  AzureWebJobsStorage__blobServiceUri: storage.outputs.blobEndpoint
  AzureWebJobsStorage__tableServiceUri: storage.outputs.tableEndpoint
  AzureWebJobsStorage__credential: 'managedidentity'
  AzureWebJobsStorage__clientId: identity.outputs.clientId

  // The actions queue: the Service Bus trigger (functions/actionWorker.ts) and the engine's sender read the same prefix.
  ServiceBusConnection__fullyQualifiedNamespace: serviceBus.outputs.fullyQualifiedNamespace
  ServiceBusConnection__credential: 'managedidentity'
  ServiceBusConnection__clientId: identity.outputs.clientId

  // ID Protection's risk logs (functions/riskEvents.ts: connection EventHubConnection, hub %RESPONDER_RISK_EVENT_HUB%).
  EventHubConnection__fullyQualifiedNamespace: eventHubs.outputs.fullyQualifiedNamespace
  EventHubConnection__credential: 'managedidentity'
  EventHubConnection__clientId: identity.outputs.clientId
  RESPONDER_RISK_EVENT_HUB: eventHubs.outputs.hubName

  // Telemetry, sent with the identity's token only (the component has local auth disabled).
  APPLICATIONINSIGHTS_CONNECTION_STRING: monitoring.outputs.connectionString
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'ClientId=${identity.outputs.clientId};Authorization=AAD'
}

// On the smallest instance the host and the worker share 512 MB; uncapped, V8 sizes its heap from the memory Node sees,
// not the instance's (docs/performance.md: the worker's peak RSS at this cap).
var memorySettings = instanceMemoryMB == 512 ? { languageWorkers__node__arguments: '--max-old-space-size=256' } : {}

module functionApp 'modules/functionApp.bicep' = {
  name: 'functionApp'
  params: {
    location: location
    name: names.app
    planName: names.plan
    identityId: identity.outputs.id
    deploymentContainerUrl: storage.outputs.deploymentContainerUrl
    nodeVersion: nodeVersion
    instanceMemoryMB: instanceMemoryMB
    maximumInstanceCount: maximumInstanceCount
    appSettings: union(appSettings, memorySettings)
    tags: tags
  }
}

// A workbook charting the engine's metrics (time to contain, actions by state, holds, retries, pacing, dead letters).
module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    appInsightsId: monitoring.outputs.appInsightsId
    tags: tags
  }
}

// The API registration and the identity's Graph and Defender permissions, from infra/permissions.json.
module entra 'modules/entra.bicep' = if (registerApi) {
  name: 'entra'
  params: {
    appUniqueName: apiName
    preAuthorizedClientIds: preAuthorizedClientIds
    enginePrincipalId: identity.outputs.principalId
    capabilities: capabilities
    defenderForEndpoint: defenderForEndpoint
    // One parameter switches both: an engine that cannot write holds no write permission.
    engineMayWrite: responderMode == 'enforce'
  }
}

// The relays: Sentinel's automation rules run the incident relay; analysts run the entity relays.
module relay 'modules/relay.bicep' = if (deployRelays) {
  name: 'relay'
  params: {
    location: location
    namePrefix: namePrefix
    engineHostName: functionApp.outputs.defaultHostName
    engineAudience: registerApi ? entra!.outputs.identifierUri : audience
    workspaceResourceId: sentinelWorkspaceId
    // Without it, the role that lets Sentinel run the relays would fail on an empty principal id; fail() names the fix.
    sentinelAutomationPrincipalId: registerApi
      ? entra!.outputs.sentinelAutomationPrincipalId
      : (empty(sentinelAutomationPrincipalId)
          ? fail('registerApi=false with deployRelays needs sentinelAutomationPrincipalId: the object id of Azure Security Insights, which grant-permissions.sh --register-api prints.')
          : sentinelAutomationPrincipalId)
    relayOnIncidentUpdate: relayOnIncidentUpdate
    // An entity relay's request is recorded as the relay's, not its runner's: a runner who also approves could approve
    // their own request unseen by four eyes. Two lists naming one principal are refused here; overlap through group
    // membership is the operator's to avoid (docs/deploy.md, "Who holds the keys").
    playbookOperatorPrincipalIds: empty(intersection(playbookOperatorPrincipalIds, approverPrincipalIds))
      ? playbookOperatorPrincipalIds
      : fail('playbookOperatorPrincipalIds and approverPrincipalIds name the same principal: the relays record requests as theirs, so four eyes cannot tell its runner from its approver.')
    tags: tags
  }
}

var analysts = concat(
  map(readerPrincipalIds, id => { principalId: id, role: 'Responder.Read' }),
  map(actorPrincipalIds, id => { principalId: id, role: 'Responder.Act' }),
  map(approverPrincipalIds, id => { principalId: id, role: 'Responder.Approve' })
)

// Each relay's identity gets the one app role its route needs (Incidents.Submit, Responder.Act), each analyst the roles
// above. entra and relay are conditional modules: `!` asserts what a condition guarantees (Bicep warns BCP318 without
// it), as the ternaries above do where registerApi decides.
module callers 'modules/engineCallers.bicep' = if (registerApi && (deployRelays || !empty(analysts))) {
  name: 'engine-callers'
  params: {
    engineServicePrincipalId: entra!.outputs.servicePrincipalId
    appRoleIds: entra!.outputs.appRoleIds
    callers: concat(deployRelays ? relay!.outputs.callers : [], analysts)
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Outputs: what the Entra, relay and tenant deployments and the guide's checks need
// ---------------------------------------------------------------------------------------------------------------------

output functionAppName string = functionApp.outputs.name
output engineUrl string = 'https://${functionApp.outputs.defaultHostName}'
output identityPrincipalId string = identity.outputs.principalId
output identityClientId string = identity.outputs.clientId
output identityResourceId string = identity.outputs.id
output apiAudience string = registerApi ? entra!.outputs.identifierUri : audience
@description('The enabled capabilities\' write permissions this deployment did not grant (responderMode audit): a deployment with responderMode enforce grants them.')
output withheldPermissions object = registerApi ? entra!.outputs.withheldPermissions : {}
output serviceBusNamespace string = serviceBus.outputs.fullyQualifiedNamespace
output storageAccountName string = storage.outputs.name
output riskEventHubNamespace string = eventHubs.outputs.name
output riskEventHubName string = eventHubs.outputs.hubName
@description('For the tenant-scope Entra diagnostic setting (eventHubAuthorizationRuleId); the rule\'s keys are never output.')
output riskEventHubAuthorizationRuleId string = eventHubs.outputs.diagnosticsAuthorizationRuleId
output appInsightsName string = monitoring.outputs.appInsightsName
@description('The analysts\' app roles this deployment assigned. Without registerApi the lists cannot be assigned here: fail() says so rather than ignore them.')
output analystAppRoles array = registerApi
  ? analysts
  : (empty(analysts) ? [] : fail('readerPrincipalIds, actorPrincipalIds and approverPrincipalIds need registerApi: with registerApi=false, assign them with grant-permissions.sh --caller <object id>=<app role>.'))
