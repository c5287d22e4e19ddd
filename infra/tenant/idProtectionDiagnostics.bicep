// Entra ID's diagnostic setting that streams ID Protection's risk logs to the engine's Event Hub (the engine's
// riskEventHub function reads them). Graph has no change notifications for risky users, so this stream is the push.
//
// Tenant scope: `az deployment tenant create --location <region>
// --template-file infra/tenant/idProtectionDiagnostics.bicep
// --parameters eventHubAuthorizationRuleId=<id> eventHubName=<hub>`.
// Who can: an Entra Security Administrator or Global Administrator (the roles that manage Entra diagnostic settings)
// who may also create tenant-scope deployments and list the rule's keys
// (Microsoft.EventHub/namespaces/authorizationRules/listKeys/action). The portal does the same without a tenant-scope
// deployment: Entra admin center > Monitoring & health > Diagnostic settings.
targetScope = 'tenant'

@description('Name of the diagnostic setting.')
param settingName string = 'sentinel-responder-id-protection'

// Diagnostic settings send to an Event Hub with an authorization rule's key, not an identity (reported in
// MicrosoftDocs/azure-docs#119932): the namespace keeps local authentication for this one rule, which holds Manage, Send
// and Listen because Azure Monitor requires all three (modules/eventHubs.bicep).
@description('Resource id of the Event Hubs namespace authorization rule the setting sends with (Manage, Send and Listen, as Azure Monitor requires; infra/modules/eventHubs.bicep). Entra ID streams with the rule\'s key, so the namespace must keep local (SAS) authentication on; the engine still reads with its managed identity.')
param eventHubAuthorizationRuleId string

@description('The event hub the engine reads (RESPONDER_RISK_EVENT_HUB).')
param eventHubName string

// The ID Protection categories the engine reads (reference: idprotection.md); the service-principal ones
// (RiskyServicePrincipals, ServicePrincipalRiskEvents) are not signals the engine acts on.
var categories = [
  'RiskyUsers'
  'UserRiskEvents'
]

resource idProtection 'microsoft.aadiam/diagnosticSettings@2017-04-01' = {
  name: settingName
  properties: {
    eventHubAuthorizationRuleId: eventHubAuthorizationRuleId
    eventHubName: eventHubName
    logs: [
      for category in categories: {
        category: category
        enabled: true
      }
    ]
  }
}

output settingId string = idProtection.id
