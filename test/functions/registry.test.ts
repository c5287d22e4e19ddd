import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registry } from '../../shared/azure/registry';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

const FUNCTIONS_DIR = path.join(__dirname, '../../functions');
const files = readdirSync(FUNCTIONS_DIR).filter((f) => f.endsWith('.ts'));

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
  // Load every entry point, as the Functions host does from package.json "main".
  for (const file of files) await import(path.join(FUNCTIONS_DIR, file));
});
afterAll(() => engine.stop());

describe('every registered function', () => {
  it('registers through the guarded adapters only, never app.* directly', () => {
    for (const file of files)
      expect(readFileSync(path.join(FUNCTIONS_DIR, file), 'utf8'), file).not.toMatch(
        /\bapp\.(http|get|post|put|patch|delete|serviceBusQueue|eventHub|timer|generic)\(/,
      );
    expect(registry.http.map((r) => r.name).sort()).toEqual([
      'approveAction',
      'denyAction',
      'health',
      'incidents',
      'listActions',
      'listDeadLetters',
      'listSweeps',
      'openapi',
      'plan',
      'replayAction',
      'requestAction',
      'riskEvents',
      'rollbackAction',
      'runSweep',
      'showAction',
    ]);
    expect(registry.queues.map((r) => `${r.name}:${r.queueName}`)).toEqual(['actionWorker:actions']);
    expect(registry.eventHubs.map((r) => `${r.name}:${r.eventHubName}:${r.connection}`)).toEqual([
      'riskEventHub:%RESPONDER_RISK_EVENT_HUB%:EventHubConnection',
    ]);
    // Every timer's schedule was parsed at registration: a typo would have thrown on import.
    expect(registry.timers.map((t) => `${t.name}:${t.schedule}`)).toEqual([
      'deadLetterReconciler:0 */5 * * * *',
      'sweepRiskyUsers:0 */30 * * * *',
      'sweepStuckActions:0 7,37 * * * *',
      'sweepMissedIncidents:0 45 * * * *',
      'sweepFalsePositives:0 20 * * * *',
      'sweepPrivilegeDrift:0 50 * * * *',
    ]);
  });

  it('refuses callers without credentials on every HTTP route that requires a role', async () => {
    const guarded = registry.http.filter((r) => 'roles' in r.auth);
    expect(guarded.length).toBeGreaterThan(0);
    for (const route of guarded) {
      for (const method of route.methods) {
        const res = await call(route.handler, route.route, { method, body: method === 'GET' ? undefined : {} });
        expect(res.status, `${method} /api/${route.route}`).toBe(401);
      }
    }
  });

  it('refuses forged credentials on every HTTP route, public ones included', async () => {
    const forged = {
      authorization: `Bearer ${await engine.authority.hmacToken(['Incidents.Submit', 'Responder.Read', 'Responder.Act', 'Responder.Approve'])}`,
    };
    for (const route of registry.http) {
      for (const method of route.methods) {
        const res = await call(route.handler, route.route, { method, headers: forged, body: method === 'GET' ? undefined : {} });
        expect(res.status, `${method} /api/${route.route}`).toBe(401);
      }
    }
  });
});
