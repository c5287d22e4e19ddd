import { InvocationContext, type Timer } from '@azure/functions';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actionWorker } from '../../functions/actionWorker';
import { deadLetterReconciler } from '../../functions/deadLetterReconciler';
import { incidents } from '../../functions/incidents';
import type { ServiceBusActionQueue } from '../../shared/queue/serviceBusQueue';
import { runtime } from '../../shared/runtime';
import { sampleIncident } from '../fixtures/incidents';
import { ServiceBusEmulator } from '../../sandbox/serviceBus';
import { DEMO, DEMO_DEVICES } from '../../sandbox/tenant';
import { Azurite } from '../support/azurite';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';
import { CAMPAIGN_POLICY } from './simulation';

/**
 * The representative subset of the fault campaign that runs the production path end to end: @azure/service-bus
 * against the AMQP emulator (duplicate deliveries, failed settlements, refused sends, expired locks, dropped
 * connections), the ledger and shared records on Azurite, and the sandbox tenant over HTTPS (429 bursts with
 * Retry-After, 5xx, connections cut mid-call). Same three judgements as the in-process campaign.
 */
const RUNS = Number(process.env.CAMPAIGN_REAL_RUNS ?? 12);

let engine: EngineUnderTest;
let broker: ServiceBusEmulator;
let azurite: Azurite;
let run = 0;
beforeAll(async () => {
  [engine, broker, azurite] = await Promise.all([EngineUnderTest.start(), new ServiceBusEmulator({ lockDurationMs: 1500 }).start(), Azurite.start()]);
}, 60_000);
afterAll(() => Promise.all([engine.stop(), broker.stop(), azurite.stop()]));

/**
 * The sample incident, plus the break-glass account and the domain controller the policy protects, and two entities
 * that disagree with the directory: John Smith's object id under the break-glass account's name, and the web server's
 * Defender id under the domain controller's name with a 40 KB display name. Those two must be held, with their reason.
 */
function incidentWithProtectedEntities(): Record<string, any> {
  const incident = sampleIncident();
  const base = incident.object.id as string;
  incident.object.properties.relatedEntities.push(
    {
      id: `${base}/Entities/bg`,
      name: 'bg',
      kind: 'Account',
      properties: { accountName: 'breakglass1', upnSuffix: 'contoso.com', aadUserId: DEMO.breakglass },
    },
    {
      id: `${base}/Entities/dc`,
      name: 'dc',
      kind: 'Host',
      properties: { hostName: 'DC01', dnsDomain: 'contoso.com', additionalData: { MdatpDeviceId: DEMO_DEVICES.dc01 } },
    },
    {
      id: `${base}/Entities/disguised-user`,
      name: 'disguised-user',
      kind: 'Account',
      properties: { accountName: 'breakglass1', upnSuffix: 'contoso.com', aadUserId: DEMO.jsmith },
    },
    {
      id: `${base}/Entities/disguised-host`,
      name: 'disguised-host',
      kind: 'Host',
      properties: { hostName: 'DC01', dnsDomain: 'contoso.com', friendlyName: 'D'.repeat(40 * 1024), additionalData: { MdatpDeviceId: DEMO_DEVICES.websrv1 } },
    },
  );
  return incident;
}

/** Final (a wait for data no rule turned out to need included), or held for a human with the reason why. */
const settled = (e: { state: string; stateReason?: string }): boolean =>
  ['succeeded', 'failed', 'blocked', 'dead-lettered', 'not-needed'].includes(e.state) || (e.state === 'pending-approval' && Boolean(e.stateReason));

const realSchedule = fc.record({
  api: fc.array(
    fc.record({
      path: fc.constantFrom(/\/api\/machines/, /\/users\//, /\/isolate$/, /revokeSignInSessions$/),
      kind: fc.constantFrom('throttle' as const, 'server-error' as const, 'drop' as const),
      count: fc.integer({ min: 1, max: 3 }),
    }),
    { maxLength: 3 },
  ),
  duplicateDeliveries: fc.integer({ min: 0, max: 2 }),
  failSettles: fc.integer({ min: 0, max: 2 }),
  failSends: fc.integer({ min: 0, max: 4 }),
  expireLocksAfterMs: fc.option(fc.integer({ min: 20, max: 400 }), { nil: undefined }),
  dropConnectionsAfterMs: fc.option(fc.integer({ min: 20, max: 400 }), { nil: undefined }),
});

describe('the fault campaign through the real SDK, the AMQP emulator, Azurite and the sandbox over HTTPS', () => {
  it(`holds its three judgements over ${RUNS} schedules`, async () => {
    const totals = { schedules: 0, actions: 0, lost: 0, held: 0, duplicates: 0, protectedTouched: 0 };
    await fc.assert(
      fc.asyncProperty(realSchedule, async (schedule) => {
        broker.createQueue('actions');
        Object.assign(broker.faults, { duplicateDeliveries: schedule.duplicateDeliveries, failSettles: schedule.failSettles, failSends: schedule.failSends });
        engine.configure(
          {
            RESPONDER_POLICY: CAMPAIGN_POLICY,
            ServiceBusConnection: broker.connectionString,
            AzureWebJobsStorage: azurite.connectionString,
            RESPONDER_LEDGER_TABLE: `real${++run}`,
          },
          { fromSettings: true },
        );
        for (const fault of schedule.api) {
          const answer =
            fault.kind === 'drop'
              ? { drop: true }
              : fault.kind === 'throttle'
                ? { status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 'TooManyRequests', message: 'throttled' } } }
                : { status: 503, body: { error: { code: 'ServiceUnavailable', message: 'try later' } } };
          engine.sandbox.faults.add({ path: fault.path, count: fault.count, ...answer });
        }
        const { queue, ledger } = await runtime();
        (queue as ServiceBusActionQueue).start((body, delivery) =>
          actionWorker(
            body,
            new InvocationContext({ invocationId: `w-${delivery.messageId}`, functionName: 'actionWorker', triggerMetadata: { ...delivery } }),
          ),
        );
        const timers = [
          schedule.expireLocksAfterMs !== undefined && setTimeout(() => broker.expireLocks(), schedule.expireLocksAfterMs),
          schedule.dropConnectionsAfterMs !== undefined && setTimeout(() => broker.dropConnections(), schedule.dropConnectionsAfterMs),
        ];
        try {
          // The relay: a 503 (the send was refused) is retried.
          for (let tries = 0; ; tries++) {
            const res = await call(incidents, 'incidents', { body: incidentWithProtectedEntities(), headers: await engine.bearer(['Incidents.Submit']) });
            if (res.status === 202) break;
            expect(res.status).toBe(503);
            if (tries > 10) throw new Error('the relay gave up');
          }
          // Until quiet: every entry final and nothing ready or scheduled (copies released as their time would come). A
          // message may stay locked a while: after a dropped connection the SDK can keep renewing a lock whose handler
          // has returned; it comes back when the renewal stops, and the ledger makes that delivery a no-op.
          const deadline = Date.now() + 45_000;
          for (;;) {
            const entries = await ledger.list();
            const open = entries.filter((e) => !settled(e));
            const { ready, scheduled } = broker.stats('actions');
            if (open.length === 0 && ready === 0 && scheduled === 0) break;
            if (Date.now() > deadline) break;
            broker.releaseScheduled();
            await new Promise((resolve) => setTimeout(resolve, 100));
          }
          await deadLetterReconciler(
            { isPastDue: false, schedule: { adjustForDST: false } } as Timer,
            new InvocationContext({ functionName: 'deadLetterReconciler' }),
          );

          const entries = await ledger.list();
          const lost = entries.filter((e) => !settled(e)).map((e) => `${e.kind}:${e.state}`);
          const held = entries.filter((e) => e.state === 'pending-approval' && e.target.type === (e.kind === 'isolateDevice' ? 'device' : 'user'));
          totals.held += held.length;
          const tenant = engine.sandbox.tenant;
          const posts = new Map<string, number>();
          for (const action of tenant.machineActions) {
            const key = /Sentinel Responder (\S+?)#/.exec(action.requestorComment ?? '')?.[1] ?? 'unknown';
            posts.set(key, (posts.get(key) ?? 0) + 1);
          }
          const duplicates = [...posts].filter(([, count]) => count > 1).map(([key, count]) => `${key} posted ${count} times`);
          const protectedTouched = tenant.calls
            .filter((c) => c.method !== 'GET' && c.status > 0 && c.status < 400 && (c.path.includes(DEMO.breakglass) || c.path.includes(DEMO_DEVICES.dc01)))
            .map((c) => `${c.method} ${c.path}`);
          totals.schedules++;
          totals.actions += entries.length;
          totals.lost += lost.length;
          totals.duplicates += duplicates.length;
          totals.protectedTouched += protectedTouched.length;
          expect(entries.length).toBeGreaterThanOrEqual(4); // revoke + disable for Adele, isolate wks-042, and the refusals
          expect({ lost, duplicates, protectedTouched }).toEqual({ lost: [], duplicates: [], protectedTouched: [] });
        } finally {
          for (const timer of timers) if (timer) clearTimeout(timer);
          await (queue as ServiceBusActionQueue).stop();
          Object.assign(broker.faults, { duplicateDeliveries: 0, failSettles: 0, failSends: 0 });
        }
      }),
      { seed: 20261128, numRuns: RUNS, endOnFailure: true },
    );
    console.log(
      `fault campaign, real SDK subset: ${totals.schedules} schedules, ${totals.actions} actions, ${totals.held} held for a human; lost ${totals.lost}, duplicated ${totals.duplicates}, protected touched ${totals.protectedTouched}`,
    );
  }, 600_000);
});
