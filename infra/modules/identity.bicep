// The engine's one identity: every Azure role, Graph and Defender permission is granted to it, and the engine protects
// it from itself (RESPONDER_IDENTITY_OBJECT_IDS).

@description('Azure region.')
param location string

@description('Name of the user-assigned managed identity.')
param name string

param tags object = {}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: name
  location: location
  tags: tags
}

output id string = identity.id
output name string = identity.name
output principalId string = identity.properties.principalId
output clientId string = identity.properties.clientId
