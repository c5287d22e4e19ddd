// The relay playbooks (Logic Apps Consumption) that bring Sentinel to the engine. An automation rule can start only a
// playbook with the Microsoft Sentinel incident trigger, so the incident relay is that trigger and one HTTP call; the
// entity relays let an analyst run one action on the account or host they are looking at. Every call to the engine is
// authenticated with the Logic App's own managed identity: no key, no function key, no secret anywhere.
//
// Pure ARM, no Microsoft Graph extension: the relays' app roles on the engine are engineCallers.bicep's (or the
// script's) job, fed by this module's `callers` output.

@description('Region of the Logic Apps and their Sentinel connection.')
param location string = resourceGroup().location

@description('Prefix of the Logic Apps\' names; analysts pick the entity relays by name in Sentinel.')
param namePrefix string = 'responder'

@description('The engine\'s host name (the Function App\'s defaultHostName), HTTPS only.')
param engineHostName string

@description('The audience the relays ask a token for: the engine API\'s app ID URI (entra.bicep output identifierUri).')
param engineAudience string

@description('Resource id of the Log Analytics workspace Microsoft Sentinel runs on; it may sit in another resource group or subscription.')
param workspaceResourceId string

@description('Object id of the Azure Security Insights service principal (entra.bicep output sentinelAutomationPrincipalId), through which automation rules run playbooks.')
param sentinelAutomationPrincipalId string

@description('Relay every incident update as well as its creation (two automation rules).')
param relayOnIncidentUpdate bool = true

@description('The automation rules\' place among the workspace\'s rules (1-1000).')
@minValue(1)
@maxValue(1000)
param automationRuleOrder int = 100

@description('One entity relay per action an analyst may run from Sentinel: { name, kind, entityType: Account | Host, params? }. The entity trigger takes no input from the analyst, so each relay asks for one fixed action; an empty list deploys none.')
param entityRelays array = [
  { name: 'disable-user', kind: 'disableUser', entityType: 'Account' }
  { name: 'revoke-sessions', kind: 'revokeSessions', entityType: 'Account' }
  { name: 'confirm-compromised', kind: 'confirmCompromised', entityType: 'Account' }
  { name: 'require-pim-reapproval', kind: 'requirePimReapproval', entityType: 'Account' }
  { name: 'isolate-device', kind: 'isolateDevice', entityType: 'Host', params: { isolationType: 'Full' } }
  { name: 'isolate-device-selective', kind: 'isolateDevice', entityType: 'Host', params: { isolationType: 'Selective' } }
]

@description('Analysts\' groups (object ids) that may run the entity relays: they get Microsoft Sentinel Playbook Operator on those Logic Apps only.')
param playbookOperatorPrincipalIds array = []

param tags object = {}

var engineUrl = 'https://${engineHostName}'
var sentinelApiId = subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')
var sentinelConnectionRef = '@parameters(\'$connections\')[\'azuresentinel\'][\'connectionId\']'
var engineAuthentication = {
  type: 'ManagedServiceIdentity'
  audience: engineAudience
}
// Logic Apps retries 408, 429 and 5xx only (https://learn.microsoft.com/azure/logic-apps/logic-apps-exception-handling),
// which is the engine's contract: 503 with Retry-After while the queue or its configuration is down, 4xx for what a
// retry cannot fix. Exponential from 20 s to at most an hour spans about five hours; an incident whose relay gave up
// is found again by the missedIncidents sweep.
var incidentRetry = {
  type: 'exponential'
  count: 12
  interval: 'PT20S'
  minimumInterval: 'PT10S'
  maximumInterval: 'PT1H'
}
// An analyst is waiting on an entity relay's run: fewer, shorter retries.
var entityRetry = {
  type: 'exponential'
  count: 5
  interval: 'PT10S'
  minimumInterval: 'PT5S'
  maximumInterval: 'PT2M'
}

// One connection for every relay: with managed identity authentication it acts as the Logic App that uses it
// (parameterValueType Alternative: https://learn.microsoft.com/azure/logic-apps/authenticate-with-managed-identity,
// "ARM template for API connections and managed identities"; Azure/Azure-Sentinel playbooks do the same).
resource sentinelConnection 'Microsoft.Web/connections@2016-06-01' = {
  name: '${namePrefix}-azuresentinel'
  location: location
  tags: tags
  // kind and parameterValueType are what that authentication needs, but Bicep's 2016-06-01 type (the newest it has)
  // lacks both (Azure/bicep-types-az#2715): its warnings on these two lines are false, and silenced on them alone.
  #disable-next-line BCP187
  kind: 'V1'
  properties: {
    displayName: '${namePrefix}-azuresentinel'
    api: {
      id: sentinelApiId
    }
    customParameterValues: {}
    #disable-next-line BCP037
    parameterValueType: 'Alternative'
  }
}

var connections = {
  '$connections': {
    value: {
      azuresentinel: {
        connectionId: sentinelConnection.id
        connectionName: sentinelConnection.name
        id: sentinelApiId
        connectionProperties: {
          authentication: {
            type: 'ManagedServiceIdentity'
          }
        }
      }
    }
  }
}

resource incidentRelay 'Microsoft.Logic/workflows@2019-05-01' = {
  name: '${namePrefix}-relay-incidents'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    state: 'Enabled'
    definition: {
      '$schema': 'https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#'
      contentVersion: '1.0.0.0'
      parameters: {
        '$connections': {
          defaultValue: {}
          type: 'Object'
        }
      }
      triggers: {
        Microsoft_Sentinel_incident: {
          type: 'ApiConnectionWebhook'
          inputs: {
            host: {
              connection: {
                name: sentinelConnectionRef
              }
            }
            body: {
              callback_url: '@{listCallbackUrl()}'
            }
            path: '/incident-creation'
          }
          // Run history is readable by anyone with Reader here, who need not read Sentinel: the incident stays hidden.
          runtimeConfiguration: { secureData: { properties: ['outputs'] } }
        }
      }
      actions: {
        // The trigger's body as it came: the engine reads every shape Sentinel sends (shared/signals/sentinel.ts).
        Post_incident_to_engine: {
          type: 'Http'
          runAfter: {}
          inputs: {
            method: 'POST'
            uri: '${engineUrl}/api/incidents'
            headers: {
              'Content-Type': 'application/json'
            }
            body: '@triggerBody()'
            authentication: engineAuthentication
            retryPolicy: incidentRetry
          }
          // The incident it posts stays hidden; its outputs, the engine's decision, stay readable for troubleshooting.
          runtimeConfiguration: { secureData: { properties: ['inputs'] } }
        }
      }
      outputs: {}
    }
    parameters: connections
  }
}

resource entityRelay 'Microsoft.Logic/workflows@2019-05-01' = [
  for relay in entityRelays: {
    name: '${namePrefix}-${relay.name}'
    location: location
    tags: tags
    identity: {
      type: 'SystemAssigned'
    }
    properties: {
      state: 'Enabled'
      definition: {
        '$schema': 'https://schema.management.azure.com/providers/Microsoft.Logic/schemas/2016-06-01/workflowdefinition.json#'
        contentVersion: '1.0.0.0'
        parameters: {
          '$connections': {
            defaultValue: {}
            type: 'Object'
          }
        }
        triggers: {
          Microsoft_Sentinel_entity: {
            type: 'ApiConnectionWebhook'
            inputs: {
              host: {
                connection: {
                  name: sentinelConnectionRef
                }
              }
              body: {
                callback_url: '@{listCallbackUrl()}'
              }
              // As Azure/Azure-Sentinel's entity-trigger playbooks subscribe (test/fixtures/entityTrigger/README.md).
              path: '/entity/@{encodeURIComponent(\'${relay.entityType}\')}'
            }
          }
        }
        actions: {
          // POST /api/actions in its entity-trigger form: { kind, entity: <the trigger body>, params? }
          // (shared/analystRequests.ts actionRequest); the engine finds the incident in the body's IncidentArmID.
          Request_action_from_engine: {
            type: 'Http'
            runAfter: {}
            inputs: {
              method: 'POST'
              uri: '${engineUrl}/api/actions'
              headers: {
                'Content-Type': 'application/json'
              }
              body: union(
                {
                  kind: relay.kind
                  entity: '@triggerBody()'
                },
                contains(relay, 'params') ? { params: relay.params } : {}
              )
              authentication: engineAuthentication
              retryPolicy: entityRetry
            }
          }
        }
        outputs: {}
      }
      parameters: connections
    }
  }
]

// Sentinel runs a playbook through its own service principal, which needs this role on the playbook's resource group
// (https://learn.microsoft.com/azure/sentinel/automation/run-playbooks, "Microsoft Sentinel Automation Contributor").
var automationContributor = 'f4c81013-99ee-4d62-a7ee-b3f1f648599a'

resource sentinelRunsPlaybooks 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, sentinelAutomationPrincipalId, automationContributor)
  properties: {
    principalId: sentinelAutomationPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', automationContributor)
  }
}

// Microsoft Sentinel Playbook Operator lists, views and runs playbooks by hand (Azure built-in roles, Security):
// granted on the entity relays only, never on the resource group.
var playbookOperator = '51d6186e-6489-4900-b93f-92e23144cca5'

// One assignment per (relay, operator): k walks the pairs, relay k / operators, operator k % operators.
var operatorCount = length(playbookOperatorPrincipalIds)
var operatorDivisor = max(operatorCount, 1)

resource operatorRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for k in range(0, length(entityRelays) * operatorCount): {
    scope: entityRelay[k / operatorDivisor]
    name: guid(entityRelay[k / operatorDivisor].id, playbookOperatorPrincipalIds[k % operatorDivisor], playbookOperator)
    properties: {
      principalId: playbookOperatorPrincipalIds[k % operatorDivisor]
      // Analysts' groups: said, so the assignment does not wait on the directory's replication to learn it.
      principalType: 'Group'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', playbookOperator)
    }
  }
]

var workspaceParts = split(workspaceResourceId, '/')

// The relays' principal ids are known only once the Logic Apps exist, so they are listed by for-expressions written
// where runtime values are allowed (a module parameter, an output), never in a variable: a variable's for-body must be
// computable at the start of the deployment (BCP182). A for-expression may not sit inside a function call either, so
// the incident relay's id travels beside the list, not concatenated to it.
module sentinelAutomation 'sentinelAutomation.bicep' = {
  name: take('${deployment().name}-sentinel-automation', 64)
  scope: resourceGroup(workspaceParts[2], workspaceParts[4])
  params: {
    workspaceName: last(workspaceParts)
    incidentRelayId: incidentRelay.id
    incidentRelayPrincipalId: incidentRelay.identity.principalId
    entityRelayPrincipalIds: [for (relay, i) in entityRelays: entityRelay[i].identity.principalId]
    relayOnIncidentUpdate: relayOnIncidentUpdate
    automationRuleOrder: automationRuleOrder
  }
}

@description('Resource id of the incident relay, which the automation rules run.')
output incidentRelayId string = incidentRelay.id

@description('Resource ids of the entity relays, in entityRelays\' order.')
output entityRelayIds array = [for (relay, i) in entityRelays: entityRelay[i].id]

// First the incident relay, then entity relay i - 1 (ARM's if() evaluates only the branch it takes).
@description('The engine app role each relay\'s identity needs: pass to engineCallers.bicep (callers) or the script (--callers).')
output callers array = [
  for i in range(0, length(entityRelays) + 1): {
    principalId: i == 0 ? incidentRelay.identity.principalId : entityRelay[i - 1].identity.principalId
    role: i == 0 ? 'Incidents.Submit' : 'Responder.Act'
  }
]

@description('Resource ids of the automation rules that run the incident relay.')
output automationRuleIds array = sentinelAutomation.outputs.automationRuleIds
