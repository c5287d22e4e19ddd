// Microsoft Sentinel Responder on the Sentinel workspace alone (incident comments and labels, listing incidents for
// missedIncidents): deployed into the workspace's resource group, which may be another one than the app's.

@description('Name of the existing Log Analytics workspace Sentinel runs on.')
param workspaceName string

@description('Principal id of the managed identity.')
param principalId string

// Role definition id: learn.microsoft.com/azure/role-based-access-control/built-in-roles
var sentinelResponder = '3e150937-b8fe-4cfb-8069-0eaf05ecd056'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource responder 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, principalId, sentinelResponder)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sentinelResponder)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}
