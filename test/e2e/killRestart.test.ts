import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTableLedger } from '../../shared/ledger/tableLedger';
import { buildIncident } from '../fixtures/incidents';
import { Sandbox } from '../../sandbox/server';
import { ServiceBusEmulator } from '../../sandbox/serviceBus';
import { Azurite } from '../support/azurite';
import { startLocalHost } from '../support/localHost';
import { buildOnce } from '../support/build';

/**
 * `npm start` on the real pipeline, killed with SIGKILL in the middle of a burst and started again on the same broker
 * and storage: every action finishes, and each device is isolated exactly once.
 */
const INCIDENTS = 40;
const POLICY = `version: 1
mode: enforce
rules:
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
`;
const deviceId = (i: number): string => `c0${i.toString(16).padStart(38, '0')}`;

let sandbox: Sandbox;
let broker: ServiceBusEmulator;
let azurite: Azurite;
beforeAll(async () => {
  await buildOnce();
  [sandbox, broker, azurite] = await Promise.all([Sandbox.start(), new ServiceBusEmulator().start(), Azurite.start()]);
  sandbox.tenant.setDefenderQuota({ max: 20, windowMs: 1000 }); // the engine paces each API to the same budget
  for (let i = 0; i < INCIDENTS; i++) sandbox.tenant.addMachine({ id: deviceId(i), computerDnsName: `kill-${i}.contoso.com` });
}, 120_000);
afterAll(async () => {
  await Promise.all([sandbox.close(), broker.stop()]);
  azurite.stop();
});

function startHost(): Promise<{ child: ChildProcess; base: string }> {
  return startLocalHost({
    ...sandbox.settings(),
    ServiceBusConnection: broker.connectionString,
    AzureWebJobsStorage: azurite.connectionString,
    RESPONDER_LEDGER_TABLE: 'killrestart',
    RESPONDER_POLICY: POLICY,
    RESPONDER_ENRICHMENT: 'off',
    // Slow enough that the kill lands mid-burst; short leases and polling so the restart finishes in seconds.
    RESPONDER_RATE_LIMITS: 'defender=20/1s',
    RESPONDER_FOLLOW_UP_SECONDS: '0.3',
    RESPONDER_RUNNING_LEASE_SECONDS: '3',
  });
}

describe('the local host on Service Bus and Table storage', () => {
  it('killed with SIGKILL mid-burst and started again, finishes every action exactly once', async () => {
    const token = await sandbox.authority.token(['Incidents.Submit']);
    const first = await startHost();
    const sent = await Promise.all(
      Array.from({ length: INCIDENTS }, async (_, i) => {
        const incident = buildIncident({ accounts: 0, hosts: 1, incidentName: `kill-${i}` });
        const host = (incident.object.properties.relatedEntities as Array<{ properties: Record<string, any> }>)[0] as { properties: Record<string, any> };
        host.properties.hostName = `KILL-${i}`;
        host.properties.additionalData.MdatpDeviceId = deviceId(i);
        const res = await fetch(`${first.base}/api/incidents`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(incident),
        });
        return res.status;
      }),
    );
    expect(sent.every((status) => status === 202)).toBe(true);

    // Mid-burst: some isolations posted, most not.
    const tenant = sandbox.tenant;
    for (const deadline = Date.now() + 30_000; tenant.machineActions.length < 8 && Date.now() < deadline;)
      await new Promise((resolve) => setTimeout(resolve, 20));
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));
    const postedBeforeKill = tenant.machineActions.length;
    expect(postedBeforeKill).toBeGreaterThan(0);
    expect(postedBeforeKill).toBeLessThan(INCIDENTS);

    const second = await startHost();
    try {
      const ledger = await openTableLedger({ connectionString: azurite.connectionString }, 'killrestart');
      let states: string[] = [];
      for (const deadline = Date.now() + 60_000; Date.now() < deadline;) {
        states = (await ledger.list()).map((e) => e.state);
        if (states.length === INCIDENTS && states.every((s) => s === 'succeeded')) break;
        broker.releaseScheduled();
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
      console.log(
        `killed after ${postedBeforeKill} of ${INCIDENTS} isolations were posted; after the restart: ${states.filter((st) => st === 'succeeded').length} succeeded`,
      );
      expect(states.filter((s) => s === 'succeeded')).toHaveLength(INCIDENTS);
      const isolations = new Map<string, number>();
      for (const action of tenant.machineActions) isolations.set(action.machineId, (isolations.get(action.machineId) ?? 0) + 1);
      expect(isolations.size).toBe(INCIDENTS);
      expect([...isolations.values()].every((n) => n === 1)).toBe(true);
      expect([...tenant.machines.values()].filter((m) => m.id.startsWith('c0') && m.isolated)).toHaveLength(INCIDENTS);
    } finally {
      second.child.kill('SIGTERM');
    }
  }, 180_000);
});
