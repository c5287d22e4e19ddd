import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPOSITORY_ROOT } from '../../cli/repositoryRoot';
import { incidents } from '../../functions/incidents';
import { buildIncident } from '../fixtures/incidents';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/**
 * Defender calls per containment in an outbreak: incidents at once, each naming one device, enriched at submit and
 * isolated by the worker (host.json's maxConcurrentCalls deliveries at once), followed until Defender reports the isolation done.
 * Concurrent lookups and machine-action reads share list calls, and the worker's lookup is answered by the record
 * enrichment read moments before (shared/clients/batchedDevices.ts); each device gets exactly one isolate post.
 * The follow-ups run at once here, so their lookups are answered from that record too; 30 s later, as in Azure, each
 * wave of follow-ups pays for its own batched lookups.
 */
const POLICY = `version: 1
mode: enforce
rules:
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
`;
const OUTBREAK = 50;
const DELIVERIES_AT_ONCE: number = JSON.parse(readFileSync(path.join(REPOSITORY_ROOT, 'host.json'), 'utf8')).extensions.serviceBus.maxConcurrentCalls;
const MAX_CALLS_PER_ISOLATION = 1.5;

const deviceId = (i: number): string => `0b${i.toString(16).padStart(38, '0')}`;

function incidentFor(i: number): Record<string, unknown> {
  const incident = buildIncident({ accounts: 0, hosts: 1, incidentName: `outbreak-${i}` });
  const [host] = incident.object.properties.relatedEntities as Array<{ properties: Record<string, any> }>;
  Object.assign(host?.properties ?? {}, { hostName: `OUTBREAK-${i}`, friendlyName: `OUTBREAK-${i}` });
  (host?.properties.additionalData as Record<string, unknown>).MdatpDeviceId = deviceId(i);
  return incident;
}

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());

describe("an outbreak's Defender calls", () => {
  it(`isolates ${OUTBREAK} devices at once with at most ${MAX_CALLS_PER_ISOLATION} Defender calls each, one isolate post per device`, async () => {
    engine.configure({ RESPONDER_POLICY: POLICY });
    const tenant = engine.sandbox.tenant;
    for (let i = 0; i < OUTBREAK; i++) tenant.addMachine({ id: deviceId(i), computerDnsName: `outbreak-${i}.contoso.com`, machineTags: ['workstation'] });
    const queue = engine.startWorker({ concurrency: DELIVERIES_AT_ONCE });
    const headers = await engine.bearer(['Incidents.Submit']);

    const answers = await Promise.all(Array.from({ length: OUTBREAK }, (_, i) => call(incidents, 'incidents', { body: incidentFor(i), headers })));
    expect(answers.map((a) => a.status)).toEqual(Array(OUTBREAK).fill(202));
    await engine.drain();

    expect(engine.ledger.all().map((e) => `${e.kind} ${e.state}`)).toEqual(Array(OUTBREAK).fill('isolateDevice succeeded'));
    const posts = new Map<string, number>();
    for (const action of tenant.machineActions) posts.set(action.machineId, (posts.get(action.machineId) ?? 0) + 1);
    expect([...posts.values()]).toEqual(Array(OUTBREAK).fill(1));
    const byApi = tenant.defenderCalls();
    const total = Object.values(byApi).reduce((sum, n) => sum + n, 0);
    expect(byApi.isolate).toBe(OUTBREAK);
    expect(tenant.calls.filter((c) => c.path.startsWith('/api/') && c.status >= 400)).toEqual([]);
    console.log(`${OUTBREAK} isolations: ${total} Defender calls (${JSON.stringify(byApi)}), ${(total / OUTBREAK).toFixed(2)} per isolation`);
    expect(total / OUTBREAK).toBeLessThanOrEqual(MAX_CALLS_PER_ISOLATION);
    queue.stop();
  });
});
