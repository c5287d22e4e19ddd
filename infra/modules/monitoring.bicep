// Logs and telemetry: a Log Analytics workspace of the app's own (not the Sentinel workspace) behind a workspace-based
// Application Insights that accepts Entra-authenticated telemetry only.

@description('Azure region.')
param location string

@description('Log Analytics workspace name.')
param workspaceName string

@description('Application Insights component name.')
param appInsightsName string

@description('Days Log Analytics keeps the app\'s logs.')
@minValue(30)
@maxValue(730)
param retentionInDays int = 30

@description('Principal id of the managed identity that publishes telemetry.')
param principalId string

param tags object = {}

// Role definition id: learn.microsoft.com/azure/role-based-access-control/built-in-roles
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: tags
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: retentionInDays
    features: {
      // No shared-key ingestion (the Data Collector API); workspace-based Application Insights is not affected.
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    // Telemetry is accepted only with an Entra token (APPLICATIONINSIGHTS_AUTHENTICATION_STRING):
    // azure-monitor/app/azure-ad-authentication.md.
    DisableLocalAuth: true
  }
}

resource publisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// Not a secret: its instrumentation key identifies the component and, with DisableLocalAuth, sends nothing without a
// token (azure-monitor/app/sdk-connection-string.md, "Is the connection string a secret?").
output connectionString string = appInsights.properties.ConnectionString
output appInsightsName string = appInsights.name
output appInsightsId string = appInsights.id
output workspaceId string = workspace.id
