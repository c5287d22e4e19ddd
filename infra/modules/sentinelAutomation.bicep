// What lives in the Sentinel workspace's resource group (relay.bicep deploys it there): the automation rules that run
// the incident relay, and the workspace role the relays' Sentinel connector needs.

@description('Name of the Log Analytics workspace Microsoft Sentinel runs on, in this module\'s resource group.')
param workspaceName string

@description('Resource id of the incident relay Logic App.')
param incidentRelayId string

@description('Principal id of the incident relay Logic App\'s managed identity.')
param incidentRelayPrincipalId string

@description('Principal ids of the entity relay Logic Apps\' managed identities.')
param entityRelayPrincipalIds array

@description('Also relay every update of an incident, not only its creation: updates bring new alerts and entities, and the engine deduplicates per (incident, action, target).')
param relayOnIncidentUpdate bool = true

@description('The automation rules\' place among the workspace\'s rules (1-1000); rules that label or reclassify should run first.')
@minValue(1)
@maxValue(1000)
param automationRuleOrder int = 100

@description('Display name prefix of the automation rules.')
param displayName string = 'Sentinel Responder: relay incidents to the engine'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

// An automation rule triggers on one event, Created or Updated (triggeringLogic.triggersWhen in
// Microsoft.SecurityInsights/automationRules): one rule per event.
var events = relayOnIncidentUpdate ? ['Created', 'Updated'] : ['Created']

resource relayRule 'Microsoft.SecurityInsights/automationRules@2025-09-01' = [
  for event in events: {
    scope: workspace
    name: guid(workspace.id, incidentRelayId, event)
    properties: {
      displayName: '${displayName} (${toLower(event)})'
      order: automationRuleOrder
      triggeringLogic: {
        isEnabled: true
        triggersOn: 'Incidents'
        triggersWhen: event
        conditions: []
      }
      actions: [
        {
          order: 1
          actionType: 'RunPlaybook'
          actionConfiguration: {
            logicAppResourceId: incidentRelayId
            tenantId: tenant().tenantId
          }
        }
      ]
    }
  }
]

// The Sentinel connector's triggers need Microsoft Sentinel Reader on the workspace; only "update incident" and
// "add comment" actions need Responder, and the relays call neither
// (https://learn.microsoft.com/azure/sentinel/automation/playbook-triggers-actions, Prerequisites).
var sentinelReader = '8d289c81-5878-46d4-8554-54e1e3d8b5cb'
// Parameters here, so known at the start of this deployment: the loop and the assignments' names may use them.
var relayPrincipalIds = concat([incidentRelayPrincipalId], entityRelayPrincipalIds)

resource relayReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for principalId in relayPrincipalIds: {
    scope: workspace
    name: guid(workspace.id, principalId, sentinelReader)
    properties: {
      principalId: principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sentinelReader)
    }
  }
]

@description('Resource ids of the automation rules.')
output automationRuleIds array = [for (event, i) in events: relayRule[i].id]
