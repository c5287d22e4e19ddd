import { InvocationContext } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actionWorker } from '../../functions/actionWorker';
import { incidents } from '../../functions/incidents';
import { messageIdOf } from '../../shared/actions/command';
import { DEFAULT_API_BUDGETS, Pacer } from '../../shared/coordination/pacer';
import { type EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { runtime } from '../../shared/runtime';
import { normalizeSentinelPayload } from '../../shared/signals/sentinel';
import { command as commandFor, recordedEntry } from '../fixtures/commands';
import { buildIncident, sampleIncident } from '../fixtures/incidents';
import { DEMO_DEVICES } from '../../sandbox/tenant';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/** Pacing, device leases and caps: the limits that must hold across instances, seen from one worker. */
const POLICY = `version: 1
mode: enforce
rules:
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
  - { id: users, when: { entity: account }, then: [revokeSessions] }
guardrails:
  caps: [{ action: revokeSessions, max: 3, per: PT1H }]
`;

const HOSTS_ONLY = `version: 1
mode: enforce
rules:
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
`;

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());

function startWorker(queue: EmbeddedQueue): void {
  queue.start((body, delivery) =>
    actionWorker(body, new InvocationContext({ invocationId: `w-${delivery.messageId}`, functionName: 'actionWorker', triggerMetadata: { ...delivery } })),
  );
}

describe('pacing and blast-radius limits', () => {
  it('defers an action whose Defender API budget is spent instead of calling into a 429, spending no attempt', async () => {
    // Another instance made the one isolation a minute this budget allows: the post cannot be reserved.
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_RATE_LIMITS: 'defender-isolate=1/60s' });
    const isolateBudget = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 60_000 }] };
    await new Pacer((await runtime()).shared, isolateBudget).take('defender-isolate');
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    // Delivered as a command without a turn (another instance queued it): the worker's reservation is refused.
    const queued = commandFor('isolateDevice', { type: 'device', id: DEMO_DEVICES.websrv1 }, { params: { isolationType: 'Full' } }, 7);
    await engine.ledger.create(recordedEntry(queued));
    await queue.send([queued]);
    await queue.idle();
    const isolate = engine.ledger.all().find((e) => e.kind === 'isolateDevice');
    expect(isolate?.state).toBe('queued');
    expect(isolate?.attempts).toEqual([]); // a deferral is not an attempt
    expect(isolate?.history.at(-1)?.note).toMatch(/paced by the engine: the defender-isolate budget \(1 per 60 s\) is spent; deferred to /);
    expect(queue.stats().scheduled).toBe(1);
    expect(engine.sandbox.tenant.calls.filter((c) => c.status === 429)).toEqual([]);
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(0);
    queue.stop();
  });

  it('queues an incident’s action for its turn when its budget is spent, before any delivery: no attempt, no 429', async () => {
    // Another instance made the one isolation a minute this budget allows: the post cannot be reserved.
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_RATE_LIMITS: 'defender-isolate=1/60s' });
    const isolateBudget = { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 60_000 }] };
    await new Pacer((await runtime()).shared, isolateBudget).take('defender-isolate');
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    const res = await call(incidents, 'incidents', { body: sampleIncident(), headers: await engine.bearer(['Incidents.Submit']) });
    expect(res.status).toBe(202);
    await queue.idle();
    const isolate = engine.ledger.all().find((e) => e.kind === 'isolateDevice');
    expect(isolate?.state).toBe('queued');
    expect(isolate?.attempts).toEqual([]); // a deferral is not an attempt
    expect(isolate?.history.at(-1)?.note).toMatch(/^waits its turn for the defender-isolate budget: due /);
    expect(queue.stats().scheduled).toBe(1);
    expect(engine.sandbox.tenant.calls.filter((c) => c.status === 429)).toEqual([]);
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(0);
    queue.stop();
  });

  it('queues the actions of a burst beyond a pressed budget for their turns, a lead ahead of each, and the ledger says so', async () => {
    engine.configure({ RESPONDER_POLICY: HOSTS_ONLY, RESPONDER_ENRICHMENT: 'off', RESPONDER_RATE_LIMITS: 'defender-isolate=2/60s' });
    const tenant = engine.sandbox.tenant;
    const device = (i: number) => `0c${i.toString(16).padStart(38, '0')}`;
    for (let i = 0; i < 5; i++) tenant.addMachine({ id: device(i), computerDnsName: `burst-${i}.contoso.com`, machineTags: ['workstation'] });
    const submit = async (i: number) => {
      const incident = buildIncident({ accounts: 0, hosts: 1, incidentName: `burst-${i}` });
      const [host] = incident.object.properties.relatedEntities as Array<{ properties: Record<string, any> }>;
      Object.assign(host?.properties ?? {}, { hostName: `BURST-${i}`, friendlyName: `BURST-${i}` });
      (host?.properties.additionalData as Record<string, unknown>).MdatpDeviceId = device(i);
      expect((await call(incidents, 'incidents', { body: incident, headers: await engine.bearer(['Incidents.Submit']) })).status).toBe(202);
    };
    const queue = engine.queue as EmbeddedQueue;
    startWorker(queue);
    // Two isolations spend the budget: the worker's pacer now sees it pressed.
    await submit(0);
    await submit(1);
    await queue.idle();
    expect(tenant.count('POST', /\/isolate$/)).toBe(2);
    const submitted = Date.now();
    for (let i = 2; i < 5; i++) await submit(i);
    await queue.idle();
    // Not delivered to be deferred: each waits, scheduled, for the unit that frees for it (60 s on), 10 s ahead of it.
    const waiting = engine.ledger
      .all()
      .filter((e) => e.kind === 'isolateDevice' && e.target.type === 'device' && e.target.id !== device(0) && e.target.id !== device(1));
    expect(waiting.map((e) => e.state)).toEqual(['queued', 'queued', 'queued']);
    for (const entry of waiting) {
      expect(entry.attempts).toEqual([]);
      const due = /waits its turn for the defender-isolate budget: due (\S+)$/.exec(entry.history.at(-1)?.note ?? '')?.[1];
      expect(Date.parse(due ?? '') - submitted).toBeGreaterThan(40_000);
    }
    expect(tenant.count('POST', /\/isolate$/)).toBe(2);
    queue.stop();
  });

  it('lets one containment per device be in flight: a second action on the device waits its turn', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY });
    const queue = engine.queue as EmbeddedQueue;
    const device = { type: 'device' as const, id: DEMO_DEVICES.websrv1 };
    const first = commandFor('isolateDevice', device, { params: { isolationType: 'Full' } }, 1);
    const second = commandFor('isolateDevice', device, { params: { isolationType: 'Selective' }, source: { type: 'incident', subject: 'another' } }, 2);
    const seen: string[] = [];
    queue.start(async (body, delivery) => {
      seen.push(delivery.messageId);
      await actionWorker(
        body,
        new InvocationContext({ invocationId: `w-${delivery.messageId}`, functionName: 'actionWorker', triggerMetadata: { ...delivery } }),
      );
    });
    for (const each of [first, second]) await engine.ledger.create(recordedEntry(each));
    await queue.send([first, second]);
    await queue.idle();
    const deferred = engine.ledger.all().find((e) => e.history.some((h) => /is in flight/.test(h.note ?? '')));
    expect(deferred?.history.find((h) => /is in flight/.test(h.note ?? ''))?.note).toMatch(
      new RegExp(`another action on ${DEMO_DEVICES.websrv1} is in flight \\((${first.id}|${second.id})\\)`),
    );
    // Released and followed through: one isolate posted; the other found it pending and follows it.
    for (let round = 0; round < 6 && engine.ledger.all().some((e) => e.state !== 'succeeded'); round++) {
      queue.releaseScheduled();
      await queue.idle();
    }
    expect(engine.ledger.all().map((e) => e.state)).toEqual(['succeeded', 'succeeded']);
    expect(engine.sandbox.tenant.count('POST', /\/isolate$/)).toBe(1);
    expect(seen).toContain(messageIdOf({ ...(deferred?.key === first.id ? first : second), deferral: 1 }));
    queue.stop();
  });

  it('holds a cap across concurrent submissions: the budget is reserved atomically, not read and hoped for', async () => {
    // Decided on the payload: its made-up users are not in the sandbox's directory (which would plan nothing for them).
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_ENRICHMENT: 'off' });
    const { engine: responder } = await runtime();
    // Five incidents at once, two accounts each: ten revokeSessions wanted, a cap of three per hour.
    const signals = Array.from({ length: 5 }, (_, i) => normalizeSentinelPayload(buildIncident({ accounts: 2, hosts: 0, incidentName: `cap-${i}` })));
    // Distinct users per incident, so no two share an idempotency key.
    signals.forEach((signal, i) =>
      signal.entities.forEach((entity, j) => {
        if (entity.kind === 'account') entity.aadUserId = `00000000-0000-4000-8000-0000000${i}${j}000`;
      }),
    );
    await Promise.all(signals.map((signal) => responder.submit(signal, 'test')));
    const revokes = engine.ledger.all().filter((e) => e.kind === 'revokeSessions');
    expect(revokes).toHaveLength(10);
    expect(revokes.filter((e) => e.state === 'queued')).toHaveLength(3);
    const blocked = revokes.filter((e) => e.state === 'blocked');
    expect(blocked).toHaveLength(7);
    for (const entry of blocked) expect(entry.stateReason).toMatch(/^(circuit open: cap reached: 3 revokeSessions per PT1H|circuit-open: cap reached)/);
  });
});
