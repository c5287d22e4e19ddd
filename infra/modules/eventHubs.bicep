// Where Entra ID Protection's diagnostic setting streams its risk logs (RiskyUsers, UserRiskEvents), for the
// riskEventHub trigger (functions/riskEvents.ts). The tenant-scope diagnostic setting itself is in infra/tenant/.

@description('Azure region.')
param location string

@description('Event Hubs namespace name (globally unique).')
param name string

@description('The hub the diagnostic setting writes to (RESPONDER_RISK_EVENT_HUB).')
param hubName string

@description('Principal id of the managed identity that reads the hub.')
param principalId string

param tags object = {}

// Role definition id: learn.microsoft.com/azure/role-based-access-control/built-in-roles
var eventHubsDataReceiver = 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: { name: 'Standard', tier: 'Standard', capacity: 1 }
  properties: {
    // The one namespace with shared-key auth left on, because the diagnostic setting can only write with a namespace
    // shared access policy (Manage, Send and Listen): azure-monitor/essentials/diagnostic-settings.md, "Destination
    // limitations"; MicrosoftDocs/azure-docs#119932. The app itself connects with its identity only, and this
    // namespace holds nothing but the risk-log hub.
    disableLocalAuth: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: false
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: hubName
  properties: {
    partitionCount: 2
    // Standard's longest: a week of risk logs survives an outage of the app (the riskyUsers sweep covers longer ones).
    messageRetentionInDays: 7
  }
}

// For the diagnostic setting only (its eventHubAuthorizationRuleId): namespace-level, with the rights Azure Monitor
// requires. Its keys are never read by this template, output or given to the app.
resource diagnosticsRule 'Microsoft.EventHub/namespaces/authorizationRules@2024-01-01' = {
  parent: namespace
  name: 'entra-diagnostic-setting'
  properties: {
    rights: ['Manage', 'Send', 'Listen']
  }
}

// Scoped to the hub: the identity reads this hub and nothing else.
resource receiver 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hub.id, principalId, eventHubsDataReceiver)
  scope: hub
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', eventHubsDataReceiver)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = namespace.name
// serviceBusEndpoint is https://<name>.servicebus.<cloud suffix>:443/: its host, whatever the cloud.
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '/')[2], ':')[0]
output hubName string = hub.name
output diagnosticsAuthorizationRuleId string = diagnosticsRule.id
