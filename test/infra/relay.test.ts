import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Node } from 'web-tree-sitter';
import { ACTIONS, ISOLATION_TYPES, PLANNABLE_ACTIONS } from '../../shared/actions/catalogue';
import { actionRequest } from '../../shared/analystRequests';
import { ROLES } from '../../shared/auth/caller';
import { declaration, INFRA, infraFiles, parseBicep, resources, valueAt, valueOf, type BicepFile } from './bicep';
import { literal, objectsOfType } from './bicepRead';

const read = (path: string) => parseBicep(readFileSync(join(INFRA, path), 'utf8'), `infra/${path}`);
const text = (node: Node | undefined) => node?.text;

describe('the relay Logic Apps (infra/modules/relay.bicep)', () => {
  let relay: BicepFile;
  beforeAll(async () => {
    relay = await read('modules/relay.bicep');
  });

  it('every HTTP action in every Logic App calls with its managed identity and an audience, over HTTPS, with no key', async () => {
    let actions = 0;
    for (const file of await infraFiles()) {
      for (const workflow of resources(file).filter((r) => r.type === 'Microsoft.Logic/workflows')) {
        for (const action of objectsOfType(workflow.body, 'Http')) {
          actions += 1;
          const where = `${file.path} ${workflow.symbol}`;
          expect(text(valueAt(action, 'inputs.authentication')), where).toBe('engineAuthentication');
          const uri = text(valueAt(action, 'inputs.uri')) ?? '';
          expect(uri, where).toMatch(/^'\$\{engineUrl\}\/api\/(incidents|actions)'$/);
          expect(uri, where).not.toMatch(/code=|sig=|sv=|key=/i);
          expect(text(valueAt(action, 'inputs.headers')) ?? '', where).not.toMatch(/x-functions-key|authorization|ocp-apim/i);
        }
      }
    }
    expect(actions).toBeGreaterThanOrEqual(2);
    const authentication = valueOf(declaration(relay, 'var', 'engineAuthentication'));
    expect(literal(valueAt(authentication, 'type')!)).toBe('ManagedServiceIdentity');
    expect(text(valueAt(authentication, 'audience'))).toBe('engineAudience');
    expect(valueOf(declaration(relay, 'var', 'engineUrl')).text).toBe("'https://${engineHostName}'");
  });

  it('the incident relay posts the Sentinel incident trigger body to /api/incidents, retrying as the engine asks', () => {
    const [incident] = resources(relay).filter((r) => r.symbol === 'incidentRelay');
    const trigger = valueAt(incident!.body, 'properties.definition.triggers.Microsoft_Sentinel_incident');
    expect(literal(valueAt(trigger!, 'type')!)).toBe('ApiConnectionWebhook');
    expect(literal(valueAt(trigger!, 'inputs.path')!)).toBe('/incident-creation');
    const post = valueAt(incident!.body, 'properties.definition.actions.Post_incident_to_engine');
    expect(literal(valueAt(post!, 'inputs.body')!)).toBe('@triggerBody()');
    expect(literal(valueAt(post!, 'inputs.method')!)).toBe('POST');
    expect(text(valueAt(post!, 'inputs.retryPolicy'))).toBe('incidentRetry');
    // The engine answers 503 + Retry-After while its queue is down: keep trying, longer and longer.
    const retry = literal(valueOf(declaration(relay, 'var', 'incidentRetry'))) as Record<string, unknown>;
    expect(retry).toMatchObject({ type: 'exponential' });
    expect(retry.count).toBeGreaterThanOrEqual(8);
    expect(identityOf(incident!.body)).toBe('SystemAssigned');
  });

  it('each entity relay asks for one plannable action on the entity type it acts on, in a form the engine accepts', () => {
    const relays = literal(valueOf(declaration(relay, 'param', 'entityRelays'))) as Array<{
      name: string;
      kind: string;
      entityType: string;
      params?: { isolationType?: string };
    }>;
    expect(new Set(relays.map((r) => r.kind))).toEqual(new Set(PLANNABLE_ACTIONS));
    expect(new Set(relays.map((r) => r.name)).size).toBe(relays.length);
    const fixture = (name: string) => JSON.parse(readFileSync(join(__dirname, '../fixtures/entityTrigger', name), 'utf8')) as unknown;
    for (const entry of relays) {
      const target = ACTIONS[entry.kind as keyof typeof ACTIONS].target;
      expect(entry.entityType, entry.name).toBe(target === 'user' ? 'Account' : 'Host');
      if (entry.params?.isolationType) expect(ISOLATION_TYPES).toContain(entry.params.isolationType);
      // The body the relay builds, with a sample trigger body: the engine's parser takes it as it is.
      const body = { kind: entry.kind, entity: fixture(target === 'user' ? 'account.json' : 'host.json'), ...(entry.params && { params: entry.params }) };
      const request = actionRequest(body, { objectId: '1f0e4c55-6d0c-4c4a-9d39-3b1e1f1d2c3b', name: 'relay' });
      expect(request.step.kind).toBe(entry.kind);
      expect(request.incident?.armId).toMatch(/\/Incidents\//);
    }
    const [entity] = resources(relay).filter((r) => r.symbol === 'entityRelay');
    const trigger = valueAt(entity!.body, 'properties.definition.triggers.Microsoft_Sentinel_entity');
    expect(text(valueAt(trigger!, 'inputs.path'))).toBe("'/entity/@{encodeURIComponent(\\'${relay.entityType}\\')}'");
    const request = valueAt(entity!.body, 'properties.definition.actions.Request_action_from_engine');
    expect(text(valueAt(request!, 'inputs.body'))).toMatch(/kind: relay\.kind\s+entity: '@triggerBody\(\)'/);
    expect(text(valueAt(request!, 'inputs.body'))).toMatch(/params: relay\.params/);
    expect(identityOf(entity!.body)).toBe('SystemAssigned');
  });

  it("its Sentinel connection authenticates with the Logic App's identity, with no stored credential", () => {
    const [connection] = resources(relay).filter((r) => r.type === 'Microsoft.Web/connections');
    expect(literal(valueAt(connection!.body, 'properties.parameterValueType')!)).toBe('Alternative');
    expect(valueAt(connection!.body, 'properties.parameterValues')).toBeUndefined();
    const connections = valueOf(declaration(relay, 'var', 'connections'));
    expect(literal(valueAt(connections, '$connections.value.azuresentinel.connectionProperties')!)).toEqual({
      authentication: { type: 'ManagedServiceIdentity' },
    });
  });

  it('gives each relay the engine app role it needs, and Sentinel the role to run playbooks', () => {
    // One for-expression over the incident relay and then each entity relay: a principal id is a runtime value, which
    // a variable's for-body may not hold (BCP182), so no variable lists them.
    const callers = valueOf(declaration(relay, 'output', 'callers')).text.replace(/\s+/g, ' ');
    expect(callers).toContain('for i in range(0, length(entityRelays) + 1):');
    expect(callers).toContain('principalId: i == 0 ? incidentRelay.identity.principalId : entityRelay[i - 1].identity.principalId');
    expect(callers).toContain(`role: i == 0 ? '${ROLES.submit}' : '${ROLES.act}'`);
    const [run] = resources(relay).filter((r) => r.symbol === 'sentinelRunsPlaybooks');
    expect(text(valueAt(run!.body, 'properties.principalId'))).toBe('sentinelAutomationPrincipalId');
    // Microsoft Sentinel Automation Contributor, on the relays' own resource group (no scope: the module's).
    expect(literal(valueOf(declaration(relay, 'var', 'automationContributor')))).toBe('f4c81013-99ee-4d62-a7ee-b3f1f648599a');
    expect(valueAt(run!.body, 'scope')).toBeUndefined();
  });
});

describe('the automation rules (infra/modules/sentinelAutomation.bicep)', () => {
  it('run the incident relay when an incident is created and when it is updated', async () => {
    const automation = await read('modules/sentinelAutomation.bicep');
    const [rule] = resources(automation).filter((r) => r.type === 'Microsoft.SecurityInsights/automationRules');
    expect(rule!.body.parent?.namedChildren[1]?.text).toBe('events');
    expect(text(valueOf(declaration(automation, 'var', 'events')))).toBe("relayOnIncidentUpdate ? ['Created', 'Updated'] : ['Created']");
    expect(literal(valueOf(declaration(automation, 'param', 'relayOnIncidentUpdate')))).toBe(true);
    expect(text(valueAt(rule!.body, 'scope'))).toBe('workspace');
    expect(literal(valueAt(rule!.body, 'properties.triggeringLogic.triggersOn')!)).toBe('Incidents');
    expect(text(valueAt(rule!.body, 'properties.triggeringLogic.triggersWhen'))).toBe('event');
    expect(literal(valueAt(rule!.body, 'properties.triggeringLogic.isEnabled')!)).toBe(true);
    const action = valueAt(rule!.body, 'properties.actions')?.namedChildren[0];
    expect(literal(valueAt(action!, 'actionType')!)).toBe('RunPlaybook');
    expect(text(valueAt(action!, 'actionConfiguration.logicAppResourceId'))).toBe('incidentRelayId');
    expect(text(valueAt(action!, 'actionConfiguration.tenantId'))).toBe('tenant().tenantId');
  });
});

function identityOf(body: Node): unknown {
  const identity = valueAt(body, 'identity.type');
  return identity && literal(identity);
}
