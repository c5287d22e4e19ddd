// The operator's workbook: the engine's metrics (customMetrics, from its OpenTelemetry instruments) charted over the
// Application Insights resource they are sent to. The charts themselves are infra/workbook.json.

@description('Where the workbook lives.')
param location string = resourceGroup().location

@description('The resource id of the Application Insights component the engine sends its metrics to.')
param appInsightsId string

@description('The name shown in Azure Monitor > Workbooks.')
param displayName string = 'Sentinel Responder'

param tags object = {}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  // A workbook's name must be a GUID: one per component, stable across deployments.
  name: guid(appInsightsId, 'sentinel-responder-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: displayName
    category: 'workbook'
    version: 'Notebook/1.0'
    serializedData: loadTextContent('../workbook.json')
    sourceId: appInsightsId
  }
}

output workbookId string = workbook.id
