// Who may call the engine: each caller gets one of the API's app roles on its service principal. A module of its own
// because the callers (the relay Logic Apps' identities) exist only after relay.bicep, which needs entra.bicep's
// audience first. Like entra.bicep it needs the Microsoft Graph extension and a Cloud Application Administrator (the
// engine's own app roles are not Microsoft Graph permissions); infra/scripts/grant-permissions.sh --callers does the
// same where the extension cannot run.
extension microsoftGraphV1

@description('Object id of the engine API\'s service principal (entra.bicep output servicePrincipalId).')
param engineServicePrincipalId string

@description('The API\'s app role ids by value (entra.bicep output appRoleIds).')
param appRoleIds object

@description('Each caller and the app role it gets: [{ principalId, role }], role one of Incidents.Submit, Responder.Read, Responder.Act, Responder.Approve. relay.bicep outputs its Logic Apps\' share; add analyst groups here (assigning a group needs Entra ID P1).')
param callers array

resource callerRole 'Microsoft.Graph/appRoleAssignedTo@v1.0' = [
  for caller in callers: {
    principalId: caller.principalId
    resourceId: engineServicePrincipalId
    appRoleId: appRoleIds[caller.role]
  }
]
