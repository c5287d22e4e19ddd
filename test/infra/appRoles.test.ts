import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROLES } from '../../shared/auth/caller';
import { declaration, INFRA, parseBicep, resources, valueAt, valueOf } from './bicep';
import { literal } from './bicepRead';

interface AppRole {
  id: string;
  value: string;
  allowedMemberTypes: string[];
  isEnabled: boolean;
}

const appRoles = JSON.parse(readFileSync(join(INFRA, 'appRoles.json'), 'utf8')) as AppRole[];
const entraText = readFileSync(join(INFRA, 'modules/entra.bicep'), 'utf8');

describe("the engine API's app roles (infra/appRoles.json, read by entra.bicep and the script)", () => {
  it('are exactly the roles shared/auth/caller.ts authorizes on', () => {
    expect(appRoles.map((role) => role.value).sort()).toEqual(Object.values(ROLES).sort());
  });

  it('have fixed, distinct GUIDs and are enabled', () => {
    for (const role of appRoles) {
      expect(role.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      expect(role.isEnabled).toBe(true);
    }
    expect(new Set(appRoles.map((role) => role.id)).size).toBe(appRoles.length);
  });

  it('go to applications where a relay calls, to people where a human decides', () => {
    const members = Object.fromEntries(appRoles.map((role) => [role.value, [...role.allowedMemberTypes].sort()]));
    expect(members).toEqual({
      [ROLES.submit]: ['Application'],
      [ROLES.read]: ['Application', 'User'],
      [ROLES.act]: ['Application', 'User'],
      // Four eyes: an approval is a person's.
      [ROLES.approve]: ['User'],
    });
  });

  it('are what entra.bicep registers, on an app whose service principal requires an assignment', async () => {
    const entra = await parseBicep(entraText, 'infra/modules/entra.bicep');
    expect(valueOf(declaration(entra, 'var', 'appRoles')).text).toBe("loadJsonContent('../appRoles.json')");
    // Declared twice (the scope, then its pre-authorized clients): both declarations are the same registration.
    const apps = resources(entra).filter((r) => r.type === 'Microsoft.Graph/applications');
    expect(apps.map((app) => app.symbol)).toEqual(['api', 'apiClients']);
    for (const app of apps) {
      expect(valueAt(app.body, 'uniqueName')?.text, app.symbol).toBe('appUniqueName');
      expect(valueAt(app.body, 'appRoles')?.text, app.symbol).toBe('appRoles');
      expect(valueAt(app.body, 'identifierUris')?.text, app.symbol).toBe('[identifierUri]');
      expect(valueAt(app.body, 'signInAudience')?.text, app.symbol).toBe("'AzureADMyOrg'");
      expect(valueAt(app.body, 'api.requestedAccessTokenVersion')?.text, app.symbol).toBe('2');
      expect(valueAt(app.body, 'api.oauth2PermissionScopes')?.text, app.symbol).toBe('[apiScope]');
    }
    expect(valueOf(declaration(entra, 'var', 'identifierUri')).text).toBe("'api://${tenant().tenantId}/${appUniqueName}'");
    const [principal] = resources(entra).filter((r) => r.type === 'Microsoft.Graph/servicePrincipals' && valueAt(r.body, 'appId')?.text === 'apiClients.appId');
    expect(literal(valueAt(principal!.body, 'appRoleAssignmentRequired')!)).toBe(true);
    // RESPONDER_AUDIENCE accepts v1 (app ID URI) and v2 (client id) tokens alike.
    expect(valueOf(declaration(entra, 'output', 'responderAudience')).text).toBe("'${identifierUri},${apiClients.appId}'");
  });
});

describe("the engine API's delegated scope (infra/apiScope.json), for analysts' Azure CLI", () => {
  const scope = JSON.parse(readFileSync(join(INFRA, 'apiScope.json'), 'utf8')) as AppRole & { type: string };

  it('has a fixed GUID of its own, is enabled, and is a user scope', () => {
    expect(scope.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(appRoles.map((role) => role.id)).not.toContain(scope.id);
    expect(scope).toMatchObject({ value: 'access_as_user', type: 'User', isEnabled: true });
  });

  it('is pre-authorized for the Azure CLI by default, after the scope exists', async () => {
    const entra = await parseBicep(entraText, 'infra/modules/entra.bicep');
    expect(valueOf(declaration(entra, 'var', 'apiScope')).text).toBe("loadJsonContent('../apiScope.json')");
    expect(valueOf(declaration(entra, 'var', 'azureCliClientId')).text).toBe("'04b07795-8ddb-461a-bbee-02f9e1bf7b46'");
    expect(literal(valueOf(declaration(entra, 'param', 'preAuthorizedClientIds')))).toEqual([]);
    const apps = resources(entra).filter((r) => r.type === 'Microsoft.Graph/applications');
    expect(valueAt(apps[0]!.body, 'api.preAuthorizedApplications')).toBeUndefined();
    expect(valueAt(apps[1]!.body, 'api.preAuthorizedApplications')?.text).toBe(
      'map(union([azureCliClientId], preAuthorizedClientIds), clientId => { appId: clientId, delegatedPermissionIds: [apiScope.id] })',
    );
    expect(valueAt(apps[1]!.body, 'dependsOn')?.text).toBe('[api]');
  });
});
