import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { RUNNING_LEASE_MS } from '../../shared/actions/lifecycle';
import { RETRY_POLICY } from '../../shared/actions/retryPolicy';
import { FOLLOW_UP_MS } from '../../shared/actions/isolateDevice';
import { registry } from '../../shared/azure/registry';
import { CONFIG_SETTINGS, DEFAULT_MAX_BODY_BYTES, readConfig } from '../../shared/config';
import { MAX_DELIVERY_COUNT } from '../../shared/queue/queue';
import { SWEEP_NAMES, SWEEPS } from '../../shared/sweeps/catalogue';
import { SWEEP_TIMINGS } from '../../shared/sweeps/sweep';
import { appSettingNames, declaration, INFRA, infraFiles, resources, unquote, valueAt, type BicepFile, type BicepResource } from './bicep';

/**
 * infra/main.bicep against the engine it deploys: every setting the engine reads is set, the queue is the queue the
 * engine's retries and sweeps assume, and the defaults are the engine's.
 */

let main: BicepFile;
let serviceBus: BicepFile;
let queue: BicepResource;
beforeAll(async () => {
  const files = await infraFiles();
  const file = (path: string) => files.find((f) => f.path === path) ?? (undefined as never);
  main = file('infra/main.bicep');
  serviceBus = file('infra/modules/serviceBus.bicep');
  queue = resources(serviceBus).find((r) => r.type === 'Microsoft.ServiceBus/namespaces/queues') ?? (undefined as never);
  // The triggers' connection settings, as the entry points declare them.
  await import('../../functions/actionWorker');
  await import('../../functions/riskEvents');
});

/** Settings readConfig reads that the template deliberately leaves unset, and what it sets instead. */
const SET_OTHERWISE: Record<string, string> = {
  ServiceBusConnection: 'ServiceBusConnection__fullyQualifiedNamespace', // a connection string: the identity form instead
  AzureWebJobsStorage: 'AzureWebJobsStorage__tableServiceUri', // a connection string: the identity form instead
  AzureWebJobsStorage__accountName: 'AzureWebJobsStorage__tableServiceUri', // assumes the public cloud's DNS suffix
};

const setting = (name: string) => {
  const settings = declaration(main, 'var', 'appSettings').value;
  return settings && valueAt(settings, name);
};
const paramDefault = (name: string) => declaration(main, 'param', name).value?.text;
/** An ISO 8601 duration of days, hours, minutes and seconds, in milliseconds. */
const isoMs = (text: string) => {
  const match = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/.exec(text);
  if (!match) return Number.NaN;
  const [d, h, m, s] = match.slice(1).map((part) => Number(part ?? 0)) as [number, number, number, number];
  return (((d * 24 + h) * 60 + m) * 60 + s) * 1000;
};

describe('infra/main.bicep sets what the engine reads', () => {
  it('sets every setting shared/config.ts reads, or sets its identity-based form', () => {
    const set = new Set(appSettingNames(main));
    const missing = CONFIG_SETTINGS.filter((name) => !set.has(name) && !(name in SET_OTHERWISE));
    expect(missing).toEqual([]);
    for (const [name, instead] of Object.entries(SET_OTHERWISE)) {
      expect(set, `${name} is left for ${instead}`).toContain(instead);
      expect(set).not.toContain(name);
    }
  });

  it("sets the triggers' connections by identity, and the hub the risk trigger names", () => {
    const set = new Set(appSettingNames(main));
    const connections = [...registry.queues, ...registry.eventHubs].map((r) => r.connection);
    expect(connections.sort()).toEqual(['EventHubConnection', 'ServiceBusConnection']);
    for (const connection of connections)
      for (const part of ['fullyQualifiedNamespace', 'credential', 'clientId']) expect(set).toContain(`${connection}__${part}`);
    for (const hub of registry.eventHubs) expect(set).toContain(/^%(\w+)%$/.exec(hub.eventHubName)?.[1]);
    for (const part of ['blobServiceUri', 'credential', 'clientId']) expect(set).toContain(`AzureWebJobsStorage__${part}`);
    expect(unquote(setting('APPLICATIONINSIGHTS_AUTHENTICATION_STRING')?.text ?? '')).toBe('ClientId=${identity.outputs.clientId};Authorization=AAD');
    expect(setting('AZURE_CLIENT_ID')?.text).toBe('identity.outputs.clientId');
  });

  it("protects the engine's own identity from the engine", () => {
    expect(setting('RESPONDER_IDENTITY_OBJECT_IDS')?.text).toBe('identity.outputs.principalId');
  });

  it("sets each sweep's schedule from a parameter whose default is the engine's", () => {
    for (const name of SWEEP_NAMES) {
      const param = /^(\w+)$/.exec(setting(SWEEPS[name].setting)?.text ?? '')?.[1];
      expect(param, SWEEPS[name].setting).toBeDefined();
      expect(unquote(paramDefault(param!) ?? ''), SWEEPS[name].setting).toBe(SWEEPS[name].schedule);
    }
  });

  it("defaults each tunable to the engine's own default", () => {
    expect(Number(paramDefault('runningLeaseSeconds')) * 1000).toBe(RUNNING_LEASE_MS);
    expect(Number(paramDefault('retryBaseSeconds')) * 1000).toBe(RETRY_POLICY.baseMs);
    expect(Number(paramDefault('followUpSeconds')) * 1000).toBe(FOLLOW_UP_MS);
    expect(Number(paramDefault('maxBodyBytes'))).toBe(DEFAULT_MAX_BODY_BYTES);
    const defaults = readConfig({});
    expect(unquote(paramDefault('ledgerTableName') ?? '')).toBe(defaults.ledgerTable);
    expect(unquote(paramDefault('logLevel') ?? '')).toBe(defaults.logLevel);
    expect(Number(paramDefault('missedIncidentsHours')) * 3_600_000).toBe(SWEEP_TIMINGS.missedLookBackMs);
    // The engine refuses a compressed clock in Azure.
    expect(setting('RESPONDER_TIME_SCALE')?.text).toBe("'1'");
  });

  it('starts a first deployment in audit mode', () => {
    expect(paramDefault('responderMode')).toBe("'audit'");
    expect(setting('RESPONDER_MODE')?.text).toBe('responderMode');
  });

  it('caps the Node heap on 512 MB instances, the default size', () => {
    expect(paramDefault('instanceMemoryMB')).toBe('512');
    const memory = declaration(main, 'var', 'memorySettings').value?.text.replace(/\s+/g, ' ');
    expect(memory).toBe("instanceMemoryMB == 512 ? { languageWorkers__node__arguments: '--max-old-space-size=256' } : {}");
    const app = declaration(main, 'module', 'functionApp').value;
    expect(app && valueAt(app, 'params.appSettings')?.text).toBe('union(appSettings, memorySettings)');
    expect(readFileSync(join(INFRA, '../docs/performance.md'), 'utf8')).toContain('--max-old-space-size=256');
  });
});

describe('the actions queue, as the engine uses it', () => {
  it("locks a message as long as a claim's lease lasts: one parameter sets both", () => {
    expect(setting('RESPONDER_RUNNING_LEASE_SECONDS')?.text).toBe('string(runningLeaseSeconds)');
    const module = declaration(main, 'module', 'serviceBus').value;
    expect(module && valueAt(module, 'params.lockDurationSeconds')?.text).toBe('runningLeaseSeconds');
    expect(valueAt(queue.body, 'properties.lockDuration')?.text).toBe("'PT${lockDurationSeconds}S'");
  });

  it("drops repeated MessageIds, but not stuckActions' resend of a message lost an hour ago", () => {
    expect(unquote(valueAt(queue.body, 'name')?.text ?? '')).toBe(registry.queues[0]?.queueName);
    expect(valueAt(queue.body, 'properties.requiresDuplicateDetection')?.text).toBe('true');
    const window = isoMs(unquote(valueAt(queue.body, 'properties.duplicateDetectionHistoryTimeWindow')?.text ?? ''));
    expect(window).toBeGreaterThan(0);
    expect(window).toBeLessThan(SWEEP_TIMINGS.queuedStuckMs);
  });

  it('dead-letters after the deliveries the reconciler expects, and on expiry', () => {
    expect(Number(valueAt(queue.body, 'properties.maxDeliveryCount')?.text)).toBe(MAX_DELIVERY_COUNT);
    expect(valueAt(queue.body, 'properties.deadLetteringOnMessageExpiration')?.text).toBe('true');
    expect(isoMs(unquote(valueAt(queue.body, 'properties.defaultMessageTimeToLive')?.text ?? ''))).toBeGreaterThan(SWEEP_TIMINGS.queuedStuckMs);
  });

  it('is Standard or Premium: Basic has no duplicate detection', () => {
    const sku = declaration(serviceBus, 'param', 'sku');
    expect(sku.decorators.get('allowed')?.[0]?.text.replace(/\s+/g, ' ')).toBe("['Standard', 'Premium']");
  });
});

describe('infra/main.bicep wires the API registration and the relays to the engine it deploys', () => {
  const moduleParam = (module: string, name: string) => {
    const body = declaration(main, 'module', module).value;
    const params = body && (body.type === 'object' ? body : body.descendantsOfType('object')[0]);
    return params ? valueAt(params, `params.${name}`)?.text : undefined;
  };

  it('registers the API the engine validates tokens for, and gives its identity the permissions the capabilities need', () => {
    expect(declaration(main, 'module', 'entra').path).toBe('modules/entra.bicep');
    expect(moduleParam('entra', 'enginePrincipalId')).toBe('identity.outputs.principalId');
    expect(moduleParam('entra', 'capabilities')).toBe('capabilities');
    // responderMode switches both: the engine's RESPONDER_MODE, and whether its identity is granted the writes.
    expect(moduleParam('entra', 'engineMayWrite')).toBe("responderMode == 'enforce'");
    // The audience the engine accepts is the registration's own (its URI and client id) whenever this deploys it.
    expect(setting('RESPONDER_AUDIENCE')?.text).toMatch(/^registerApi \? entra!\.outputs\.responderAudience : /);
  });

  it('points the relays at this Function App, asking for tokens for the registered API, and gives each its one app role', () => {
    expect(moduleParam('relay', 'engineHostName')).toBe('functionApp.outputs.defaultHostName');
    expect(moduleParam('relay', 'engineAudience')).toBe('registerApi ? entra!.outputs.identifierUri : audience');
    expect(moduleParam('relay', 'workspaceResourceId')).toBe('sentinelWorkspaceId');
    expect(moduleParam('callers', 'callers')).toBe('concat(deployRelays ? relay!.outputs.callers : [], analysts)');
    expect(moduleParam('callers', 'engineServicePrincipalId')).toBe('entra!.outputs.servicePrincipalId');
  });

  it("gives the analysts' lists their app roles on the engine, one role per list", () => {
    const analysts = declaration(main, 'var', 'analysts').value?.text.replace(/\s+/g, ' ');
    expect(analysts).toBe(
      "concat( map(readerPrincipalIds, id => { principalId: id, role: 'Responder.Read' }), map(actorPrincipalIds, id => { principalId: id, role: 'Responder.Act' }), map(approverPrincipalIds, id => { principalId: id, role: 'Responder.Approve' }) )",
    );
    for (const list of ['readerPrincipalIds', 'actorPrincipalIds', 'approverPrincipalIds']) expect(paramDefault(list), list).toBe('[]');
  });

  it("charts the engine's metrics in a workbook on the component the identity sends them to", () => {
    expect(declaration(main, 'module', 'workbook').path).toBe('modules/workbook.bicep');
    expect(moduleParam('workbook', 'appInsightsId')).toBe('monitoring.outputs.appInsightsId');
    expect(setting('APPLICATIONINSIGHTS_AUTHENTICATION_STRING')?.text).toBe("'ClientId=${identity.outputs.clientId};Authorization=AAD'");
  });
});
