import type { ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RUNNING_LEASE_MS } from '../../shared/actions/lifecycle';
import { openTableLedger } from '../../shared/ledger/tableLedger';
import { buildIncident } from '../fixtures/incidents';
import { Sandbox } from '../../sandbox/server';
import { ServiceBusEmulator } from '../../sandbox/serviceBus';
import { Azurite } from '../support/azurite';
import { startLocalHost } from '../support/localHost';
import { buildOnce } from '../support/build';

/**
 * `npm start` on the real pipeline, enrichment on and the default lease, killed with SIGKILL in the middle of a burst
 * and started again on the same broker and storage. The broker keeps the dead instance's message locks until they
 * expire (its default 60 s lock duration), as Service Bus does for an instance that vanished, and the ledger keeps its
 * claims until their leases lapse: every action still finishes within about one lease of the restart, each user
 * disabled and each device isolated exactly once.
 */
const INCIDENTS = 40;
const POLICY = `version: 1
mode: enforce
rules:
  - { id: risky-users, when: { entity: account, userRisk: [high] }, then: [disableUser] }
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
`;
const deviceId = (i: number): string => `c0${i.toString(16).padStart(38, '0')}`;
const userId = (i: number): string => `0000c0de-0000-4000-8000-${i.toString(16).padStart(12, '0')}`;
/** From the restart to the last action's end: one lease for the takeover, and time for the burst it releases at once. */
const FINISH_WITHIN_MS = RUNNING_LEASE_MS + 30_000;

let sandbox: Sandbox;
let broker: ServiceBusEmulator;
let azurite: Azurite;
beforeAll(async () => {
  await buildOnce();
  [sandbox, broker, azurite] = await Promise.all([Sandbox.start(), new ServiceBusEmulator().start(), Azurite.start()]);
  sandbox.tenant.setDefenderQuota({ max: 20, windowMs: 1000 }); // the engine paces each API to the same budget
  for (let i = 0; i < INCIDENTS; i++) {
    sandbox.tenant.addMachine({ id: deviceId(i), computerDnsName: `kill-${i}.contoso.com`, riskScore: 'High' });
    sandbox.tenant.addUser({ id: userId(i), userPrincipalName: `kill-user-${i}@contoso.com`, displayName: `Kill User ${i}` });
    sandbox.tenant.setRisk(userId(i), 'high');
  }
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
    RESPONDER_ENRICHMENT: 'on',
    // Time compressed where the tenant allows it: a Defender quota slow enough that the kill lands mid-burst, and
    // machine actions followed up at once (the sandbox completes them). The lease is the default.
    RESPONDER_RATE_LIMITS: 'defender=20/1s',
    RESPONDER_FOLLOW_UP_SECONDS: '0.3',
  });
}

/** An incident naming one risky user and one device of the tenant, as its directory and Defender know them. */
function incident(i: number): Record<string, any> {
  const body = buildIncident({ accounts: 1, hosts: 1, incidentName: `kill-${i}` });
  const [account, host] = (body.object.properties.relatedEntities as Array<{ properties: Record<string, any> }>).map((e) => e.properties);
  Object.assign(account!, { friendlyName: `Kill User ${i}`, accountName: `kill-user-${i}`, aadUserId: userId(i) });
  Object.assign(host!, { friendlyName: `KILL-${i}`, hostName: `KILL-${i}` });
  host!.additionalData.MdatpDeviceId = deviceId(i);
  return body;
}

describe('the local host on Service Bus and Table storage', () => {
  it('killed with SIGKILL mid-burst and started again, takes the dead instance’s actions over within a lease, each exactly once', async () => {
    const token = await sandbox.authority.token(['Incidents.Submit']);
    const first = await startHost();
    const sent = await Promise.all(
      Array.from({ length: INCIDENTS }, async (_, i) => {
        const res = await fetch(`${first.base}/api/incidents`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
          body: JSON.stringify(incident(i)),
        });
        return res.status;
      }),
    );
    expect(sent.every((status) => status === 202)).toBe(true);

    // Mid-burst: some isolations posted, most not. The instance vanishes: the broker hears no goodbye.
    const tenant = sandbox.tenant;
    for (const deadline = Date.now() + 30_000; tenant.machineActions.length < 8 && Date.now() < deadline;)
      await new Promise((resolve) => setTimeout(resolve, 20));
    broker.faults.locksOutliveClients = true;
    first.child.kill('SIGKILL');
    await new Promise((resolve) => first.child.once('exit', resolve));
    const killedAt = Date.now();
    const postedBeforeKill = tenant.machineActions.length;
    const disabledBeforeKill = [...tenant.users.values()].filter((u) => u.id.startsWith('0000c0de') && !u.accountEnabled).length;
    expect(postedBeforeKill).toBeGreaterThan(0);
    expect(postedBeforeKill).toBeLessThan(INCIDENTS);

    const second = await startHost();
    const restartedAt = Date.now();
    try {
      const ledger = await openTableLedger({ connectionString: azurite.connectionString }, 'killrestart');
      let entries = await ledger.list();
      let finishedAt = Number.POSITIVE_INFINITY;
      for (const deadline = restartedAt + FINISH_WITHIN_MS + 30_000; Date.now() < deadline; await new Promise((resolve) => setTimeout(resolve, 200))) {
        entries = await ledger.list();
        if (entries.length === 2 * INCIDENTS && entries.every((e) => e.state === 'succeeded')) {
          finishedAt = Date.now();
          break;
        }
      }
      const takenOver = entries.filter((e) => e.history.some((h) => h.note?.startsWith('taken over: lease expired'))).length;
      console.log(
        `killed after ${postedBeforeKill} of ${INCIDENTS} isolations were posted and ${disabledBeforeKill} users disabled; ` +
          `after the restart: ${entries.filter((e) => e.state === 'succeeded').length} of ${2 * INCIDENTS} actions succeeded ` +
          `(${takenOver} taken over from the dead instance) ${((finishedAt - restartedAt) / 1000).toFixed(1)} s after the restart, ` +
          `${((finishedAt - killedAt) / 1000).toFixed(1)} s after the kill`,
      );
      expect(
        entries
          .filter((e) => e.state === 'succeeded')
          .map((e) => e.kind)
          .sort(),
      ).toEqual([...Array(INCIDENTS).fill('disableUser'), ...Array(INCIDENTS).fill('isolateDevice')]);
      // The dead instance's claims lapse one lease after their last renewal: no later than a lease after the restart.
      expect(takenOver).toBeGreaterThan(0);
      expect(finishedAt - restartedAt).toBeLessThanOrEqual(FINISH_WITHIN_MS);

      // Each user disabled by exactly one PATCH, each device isolated by exactly one machine action.
      for (let i = 0; i < INCIDENTS; i++) {
        expect(tenant.users.get(userId(i))?.accountEnabled).toBe(false);
        expect(tenant.count('PATCH', new RegExp(`/users/${userId(i)}$`))).toBe(1);
      }
      const isolations = new Map<string, number>();
      for (const action of tenant.machineActions) isolations.set(action.machineId, (isolations.get(action.machineId) ?? 0) + 1);
      expect(isolations.size).toBe(INCIDENTS);
      expect([...isolations.values()].every((n) => n === 1)).toBe(true);
      expect(tenant.machineActions.every((a) => a.type === 'Isolate')).toBe(true);
      expect([...tenant.machines.values()].filter((m) => m.id.startsWith('c0') && m.isolated)).toHaveLength(INCIDENTS);
    } finally {
      second.child.kill('SIGTERM');
    }
  }, 240_000);
});
