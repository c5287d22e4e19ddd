import { InvocationContext } from '@azure/functions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { actionWorker } from '../../functions/actionWorker';
import { incidents } from '../../functions/incidents';
import type { ActionCommand } from '../../shared/actions/command';
import { DEFAULT_API_BUDGETS, Pacer } from '../../shared/coordination/pacer';
import { MemorySharedState } from '../../shared/coordination/sharedState';
import { METRIC_NAMES } from '../../shared/metrics';
import type { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { runtime } from '../../shared/runtime';
import { DEMO, DEMO_DEVICES } from '../../sandbox/tenant';
import { command as commandFor, recordedEntry } from '../fixtures/commands';
import { sampleIncident } from '../fixtures/incidents';
import { EngineUnderTest } from '../support/engine';
import { call } from '../support/http';

/** The metrics port records where the engine acts: each test drives the real functions and reads MemoryMetrics. */
const POLICY = `version: 1
mode: enforce
rules:
  - { id: creds, when: { tactics: [CredentialAccess] }, then: [revokeSessions] }
  - { id: hosts, when: { entity: host }, then: [isolateDevice] }
`;

const HOLD_ADMINS = `version: 1
mode: enforce
guardrails:
  approvals: [{ action: revokeSessions, when: { privileged: true } }]
rules:
  - { id: creds, when: { entity: account }, then: [revokeSessions] }
`;

let engine: EngineUnderTest;
beforeAll(async () => {
  engine = await EngineUnderTest.start();
});
afterAll(() => engine.stop());

function startWorker(): EmbeddedQueue {
  const queue = engine.queue as EmbeddedQueue;
  queue.start((body, delivery) =>
    actionWorker(body, new InvocationContext({ invocationId: `w-${delivery.messageId}`, functionName: 'actionWorker', triggerMetadata: { ...delivery } })),
  );
  return queue;
}

async function submit(body: unknown = sampleIncident()): Promise<void> {
  const res = await call(incidents, 'incidents', { body, headers: await engine.bearer(['Incidents.Submit']) });
  expect(res.status).toBe(202);
}

describe('metrics recorded by the engine', () => {
  it('a submitted incident whose actions succeed: every transition counted, and a time to contain per action', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY });
    const queue = startWorker();
    await submit();
    await engine.drain();
    queue.stop();
    const { metrics } = engine;
    const moves = metrics.of(METRIC_NAMES.actionTransitions, { kind: 'revokeSessions' }).map((p) => `${p.attributes.from}>${p.attributes.to}`);
    expect(moves).toEqual(['new>planned', 'planned>queued', 'queued>running', 'running>succeeded']);
    const contained = metrics.of(METRIC_NAMES.containmentDuration);
    expect(contained.map((p) => p.attributes)).toEqual([
      { kind: 'revokeSessions', source: 'incident', approved: false },
      { kind: 'isolateDevice', source: 'incident', approved: false },
    ]);
    for (const { value } of contained) expect(value).toBeGreaterThanOrEqual(0);
    // Each from its ledger entry's creation to its success being written.
    const isolate = engine.ledger.all().find((e) => e.kind === 'isolateDevice')!;
    const seconds = metrics.of(METRIC_NAMES.containmentDuration, { kind: 'isolateDevice' })[0]!.value;
    expect(seconds).toBeGreaterThanOrEqual((Date.parse(isolate.history.at(-1)!.at) - Date.parse(isolate.createdAt)) / 1000);
    expect(seconds).toBeLessThanOrEqual((Date.now() - Date.parse(isolate.createdAt)) / 1000);
  });

  it('an audited rehearsal ends succeeded but contains nothing: no time to contain', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_MODE: 'audit' });
    const queue = startWorker();
    await submit();
    await engine.drain();
    queue.stop();
    expect(engine.metrics.of(METRIC_NAMES.actionTransitions, { to: 'succeeded' })).toHaveLength(2);
    expect(engine.metrics.of(METRIC_NAMES.containmentDuration)).toEqual([]);
  });

  it('a transient failure records a retry, with the status the API answered', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY });
    engine.sandbox.faults.add({ method: 'POST', path: /revokeSignInSessions$/, count: 1, status: 503, body: { error: { code: 'x', message: 'later' } } });
    const queue = startWorker();
    await submit();
    await queue.idle();
    queue.stop();
    expect(engine.metrics.of(METRIC_NAMES.retries).map((p) => p.attributes)).toEqual([{ kind: 'revokeSessions', status: '503' }]);
    expect(engine.metrics.of(METRIC_NAMES.actionTransitions, { kind: 'revokeSessions', from: 'running', to: 'queued' })).toHaveLength(1);
  });

  it('a spent budget records the pacing wait, per API: queued for its turn at submission', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_RATE_LIMITS: 'defender-isolate=1/60s' });
    await new Pacer((await runtime()).shared, { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 60_000 }] }).take('defender-isolate');
    const queue = startWorker();
    await submit();
    await queue.idle();
    queue.stop();
    const waits = engine.metrics.of(METRIC_NAMES.pacingWait);
    expect(waits.map((p) => p.attributes)).toEqual([{ api: 'defender-isolate', how: 'queued' }]);
    expect(waits[0]?.value).toBeGreaterThan(30);
    expect(waits[0]?.value).toBeLessThanOrEqual(60);
  });

  it('an action the worker defers for a spent budget records the wait, deferred', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY, RESPONDER_RATE_LIMITS: 'defender-isolate=1/60s' });
    await new Pacer((await runtime()).shared, { ...DEFAULT_API_BUDGETS, 'defender-isolate': [{ max: 1, windowMs: 60_000 }] }).take('defender-isolate');
    const queue = startWorker();
    // Delivered without a turn (another instance queued it): the worker's reservation is refused.
    const queued = commandFor('isolateDevice', { type: 'device', id: DEMO_DEVICES.websrv1 }, { params: { isolationType: 'Full' } }, 7);
    await engine.ledger.create(recordedEntry(queued));
    await queue.send([queued]);
    await queue.idle();
    queue.stop();
    const waits = engine.metrics.of(METRIC_NAMES.pacingWait);
    expect(waits.map((p) => p.attributes)).toEqual([{ api: 'defender-isolate', how: 'deferred' }]);
    expect(waits[0]?.value).toBeGreaterThan(0);
    expect(engine.metrics.of(METRIC_NAMES.retries)).toEqual([]); // a deferral is not a retry
  });

  it('a call that waits within itself for its budget records the wait, inline; one that did not wait records nothing', async () => {
    const clock = { now: 1_000_000 };
    const waits: Array<[string, number]> = [];
    const pacer = new Pacer(
      new MemorySharedState(),
      { ...DEFAULT_API_BUDGETS, idprotection: [{ max: 1, windowMs: 1000 }] },
      {
        now: () => clock.now,
        sleep: async (ms) => void (clock.now += ms),
        onWait: (api, ms) => waits.push([api, ms]),
      },
    );
    await pacer.take('idprotection');
    expect(waits).toEqual([]);
    await pacer.take('idprotection'); // the window's one call is spent: it sleeps until the window frees
    expect(waits).toHaveLength(1);
    expect(waits[0]?.[0]).toBe('idprotection');
    expect(waits[0]?.[1]).toBeGreaterThanOrEqual(1000);
    expect(waits[0]?.[1]).toBeLessThanOrEqual(1100);
  });

  /** An incident naming Megan, a Global Administrator, under a policy that holds revoking an admin's sessions. */
  async function heldForMegan() {
    engine.configure({ RESPONDER_POLICY: HOLD_ADMINS });
    const queue = startWorker();
    const incident = sampleIncident();
    incident.object.properties.relatedEntities = [
      { kind: 'Account', properties: { accountName: 'megan.bowen', upnSuffix: 'contoso.com', aadUserId: DEMO.megan } },
    ];
    await submit(incident);
    await queue.idle();
    return queue;
  }

  it('a hold records its creation, and its decision when an analyst denies it', async () => {
    const queue = await heldForMegan();
    expect(engine.metrics.of(METRIC_NAMES.holdsCreated).map((p) => p.attributes)).toEqual([{ kind: 'revokeSessions' }]);
    const held = engine.ledger.all().find((e) => e.state === 'pending-approval')!;
    const analysts = (await runtime()).analysts;
    await analysts.deny(held.key, { objectId: '22222222-2222-4222-8222-222222222222', name: 'Analyst Two' }, 'not this one');
    queue.stop();
    expect(engine.metrics.of(METRIC_NAMES.holdsDecided).map((p) => p.attributes)).toEqual([{ kind: 'revokeSessions', to: 'denied' }]);
  });

  it('an action an analyst approves records the hold decided, and its time to contain as approved', async () => {
    const queue = await heldForMegan();
    const held = engine.ledger.all().find((e) => e.state === 'pending-approval')!;
    await (await runtime()).analysts.approve(held.key, { objectId: '22222222-2222-4222-8222-222222222222', name: 'Analyst Two' }, 'confirmed');
    await engine.drain();
    queue.stop();
    await expect(engine.ledger.get(held.key)).resolves.toMatchObject({ state: 'succeeded' });
    expect(engine.metrics.of(METRIC_NAMES.holdsDecided).map((p) => p.attributes.to)).toEqual(['planned']);
    expect(engine.metrics.of(METRIC_NAMES.containmentDuration).map((p) => p.attributes)).toEqual([
      { kind: 'revokeSessions', source: 'incident', approved: true },
    ]);
  });

  it('a message the worker refuses records a dead letter, by who and why', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY });
    const queue = startWorker();
    await queue.send([{ id: 'not-a-key' } as unknown as ActionCommand]);
    await queue.idle();
    queue.stop();
    expect(engine.metrics.of(METRIC_NAMES.deadLetters).map((p) => p.attributes)).toEqual([{ by: 'worker', reason: 'SchemaInvalid' }]);
  });
});
