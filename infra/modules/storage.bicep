// The app's storage account: the Functions host's own blobs (timer and Event Hubs checkpoints, locks), the Flex
// Consumption deployment container, and the engine's ledger table. Shared keys are off: only Entra identities get in.

@description('Azure region.')
param location string

@description('Storage account name (3-24 lower-case letters and digits, globally unique).')
param name string

@description('Blob container that holds the Flex Consumption deployment package.')
param deploymentContainerName string

@description('The action ledger table (RESPONDER_LEDGER_TABLE).')
param ledgerTableName string

@description('Principal id of the managed identity that gets data roles on this account.')
param principalId string

param tags object = {}

// Role definition ids: learn.microsoft.com/azure/role-based-access-control/built-in-roles
var storageBlobDataOwner = 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
var storageTableDataContributor = '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { bypass: 'AzureServices', defaultAction: 'Allow' }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: { publicAccess: 'None' }
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: account
  name: 'default'
}

// Created here so that it exists, named by the same parameter as RESPONDER_LEDGER_TABLE, before the first request; the
// engine's own create-if-missing then finds it (a 409 it ignores).
resource ledgerTable 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = {
  parent: tableService
  name: ledgerTableName
}

// The host's AzureWebJobsStorage identity needs Storage Blob Data Owner on the account (it creates its own containers;
// Queue Data Contributor and Account Contributor only for blob triggers, which the app has none of):
// MicrosoftDocs/azure-docs articles/azure-functions/functions-reference.md, "Connecting to host storage with an identity".
// The deployment container lives in the same account, so this one assignment covers Flex deployments too.
resource blobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, storageBlobDataOwner)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageBlobDataOwner)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

// On the account, not the table: the engine opens the ledger with Create Table (shared/ledger/tableLedger.ts), an
// account-level operation. The account holds nothing but this app's data.
resource tableContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(account.id, principalId, storageTableDataContributor)
  scope: account
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', storageTableDataContributor)
    principalId: principalId
    principalType: 'ServicePrincipal'
  }
}

output name string = account.name
output id string = account.id
output blobEndpoint string = account.properties.primaryEndpoints.blob
output tableEndpoint string = account.properties.primaryEndpoints.table
output deploymentContainerUrl string = '${account.properties.primaryEndpoints.blob}${deploymentContainer.name}'
