import { beforeEach, describe, expect, it } from 'vitest';
import { LIFECYCLE_TIMINGS } from '../../shared/actions/lifecycle';
import { EXECUTORS } from '../../shared/actions/executors';
import type { Devices } from '../../shared/clients/defender';
import { assemble } from '../../shared/composition';
import { EnginePaced } from '../../shared/coordination/pacer';
import { MemorySharedState } from '../../shared/coordination/sharedState';
import { Enricher } from '../../shared/enrichment/enrich';
import { MemoryLedger } from '../../shared/ledger/memoryLedger';
import { logger } from '../../shared/log';
import { compilePolicy } from '../../shared/policy/decide';
import { parsePolicy } from '../../shared/policy/load';
import { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import type { QueueMessage } from '../../shared/queue/queue';
import { normalizeSentinelPayload } from '../../shared/signals/sentinel';
import { normalizeRiskRecords } from '../../shared/signals/risk';
import type { RiskReevaluation } from '../../shared/queue/reevaluation';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Signal } from '../../shared/signals/signal';
import { DEMO, DEMO_DEVICES, SAMPLE_INCIDENT_ID } from '../../sandbox/tenant';
import { sampleIncident } from '../fixtures/incidents';
import { useSandboxContext } from '../support/sandboxContext';

process.env.LOG_LEVEL = 'silent';
const env = useSandboxContext();

/** Disable the risky user, isolate the risky device: the device's rule reads its risk, which Defender gives. */
const POLICY = `version: 1
mode: enforce
rules:
  - { id: risky-users, when: { entity: account, userRisk: [high] }, then: [disableUser] }
  - { id: risky-hosts, when: { entity: host, deviceRisk: [High] }, then: [isolateDevice] }
`;
const SPENT = 'paced by the engine: the defender-machine budget (100 per 60 s) is spent';
const ANALYST = { objectId: '0a0b0c0d-aaaa-4aaa-8aaa-aaaaaaaaaaaa', name: 'analyst a' };

/**
 * The engine, its worker and the analysts' side over the sandbox tenant, with the Defender budget spent while `spent`
 * is set: every Defender call the engine makes is then held back by its own pacing (EnginePaced), as in a burst of
 * incidents. The queue records when each re-evaluation is scheduled for.
 */
function world() {
  const state = { spent: true, directorySpent: false, now: Date.parse('2026-11-28T12:00:00.000Z') };
  /** `port`, its every call refused by the engine's pacing while `spent()` says so. */
  const paced = <T extends object>(port: T, spent: () => boolean): T =>
    new Proxy(port, {
      get(target, name, receiver) {
        const value = Reflect.get(target, name, receiver);
        if (typeof value !== 'function') return value;
        return (...args: unknown[]) => {
          if (spent()) throw new EnginePaced('defender-machine', SPENT, 45_000);
          return value.apply(target, args);
        };
      },
    });
  const context = {
    ...env.context,
    devices: paced(env.context.devices as Devices, () => state.spent),
    directory: paced(env.context.directory, () => state.directorySpent),
  };
  // Scheduled messages wait on the test's clock: each look comes when the test lets it (nextLook).
  const queue = new EmbeddedQueue({ now: () => state.now });
  const looks: Array<{ message: QueueMessage; afterMs: number }> = [];
  const schedule = queue.schedule.bind(queue);
  queue.schedule = async (message, at) => {
    looks.push({ message, afterMs: at.getTime() - state.now });
    return schedule(message, at);
  };
  const ledger = new MemoryLedger();
  const parts = assemble({
    policy: compilePolicy(parsePolicy(POLICY, 'test policy')),
    ledger,
    queue,
    shared: new MemorySharedState(),
    modeOverride: 'enforce',
    now: () => new Date(state.now),
    log: logger(),
    executors: EXECUTORS,
    executionContext: async () => context,
    timings: LIFECYCLE_TIMINGS,
    enrich: (signal: Signal) =>
      new Enricher(
        async () => context,
        () => state.now,
        async () => undefined,
      ).enrich(signal, []),
  });
  queue.start((body, delivery) => parts.worker.handleMessage(body, delivery).then(() => undefined));
  /** Let the next look come: time passes, the queue delivers what was scheduled. */
  const nextLook = async () => {
    state.now += 10 * 60_000;
    queue.releaseScheduled();
    await queue.idle();
  };
  const comments = () => [...env.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!.comments.values()].map((c) => c.properties.message as string);
  /** Service Bus gives up on the first look (a worker that kept crashing), and the reconciler finds it dead-lettered. */
  const loseFirstLook = () => {
    queue.deadLetters.push({
      messageId: 'look-1',
      body: looks[0]!.message,
      reason: 'MaxDeliveryCountExceeded',
      description: 'could not be consumed after 10 delivery attempts',
      deliveryCount: 10,
    });
    return parts.deadLetters.reconcile();
  };
  return { state, queue, ledger, looks, nextLook, comments, loseFirstLook, ...parts };
}

/** The sample incident without the risk score its alert carries: the device's risk is Defender's to say. */
function incident(): Signal {
  const body = sampleIncident();
  for (const entity of body.object.properties.relatedEntities) delete entity.properties.additionalData?.RiskScore;
  return normalizeSentinelPayload(body);
}

/** Adele at high risk, as the RiskyUsers stream brings it. */
function riskSignal(): Signal {
  const body = JSON.parse(readFileSync(join(__dirname, '../fixtures/risk/RiskyUsers.json'), 'utf8')) as { records: unknown[] };
  const [read] = normalizeRiskRecords({ records: [body.records[0]] });
  if (read?.status !== 'signal') throw new Error('the RiskyUsers fixture no longer reads as a signal');
  return read.signal;
}

describe('decisions that wait for data', () => {
  beforeEach(() => {
    env.sandbox.tenant.actionCompletionMs = 0;
  });

  it('acts on the user now, waits on the device whose risk the spent budget kept unread, and isolates it on the next look', async () => {
    const w = world();
    const { decision, recorded } = await w.engine.submit(incident(), 'relay');
    expect(decision.actions.map((a) => `${a.kind}:${a.target.id}`)).toEqual([`disableUser:${DEMO.adele}`]);
    expect(decision.skipped).toEqual([]);
    expect(decision.waiting).toEqual([
      expect.objectContaining({
        kind: 'isolateDevice',
        ruleId: 'risky-hosts',
        data: ['deviceRisk'],
        why: `wks-042.contoso.com: ${SPENT}`,
        retryAfterMs: 45_000,
      }),
    ]);
    // When it is looked at again: the budget's refill (45 s), not sooner; said in the decision, its summary and notes.
    expect(w.looks).toEqual([
      {
        message: expect.objectContaining({ type: 'reevaluateIncident', reason: 'waitingForData', attempt: 1, incidentArmId: SAMPLE_INCIDENT_ID }),
        afterMs: 45_000,
      },
    ]);
    expect(decision.lookAgainAt).toBe('2026-11-28T12:00:45.000Z');
    expect(decision.summary).toMatch(/\| 1 waiting for data \(evaluated again at 2026-11-28T12:00:45.000Z\)$/);
    expect(decision.notes).toContain(
      '1 action(s) wait for data: the incident is evaluated again at 2026-11-28T12:00:45.000Z (look 2 of 5); what still waits after the last look is held for a human',
    );
    // The ledger has the wait under the action's key, for GET /api/actions?incident=…; the incident a comment.
    const key = decision.waiting[0]!.idempotencyKey;
    expect(recorded).toContainEqual({ key, kind: 'isolateDevice', target: 'wks-042.contoso.com', state: 'waiting', new: true });
    expect(await w.ledger.get(key)).toMatchObject({
      state: 'waiting',
      stateReason: `rule risky-hosts may want it: waiting for device risk (wks-042.contoso.com: ${SPENT}); evaluated again at 2026-11-28T12:00:45.000Z`,
    });
    expect(w.comments()).toContainEqual(
      expect.stringMatching(
        /^Sentinel Responder — WAITING for data: 1 action\(s\) not decided yet\nEvaluated again at 2026-11-28T12:00:45.000Z \(look 2 of 5\)/,
      ),
    );
    await w.queue.idle();
    expect(env.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);

    // The budget frees up; the look reads the device's risk and plans the isolation under the same key.
    w.state.spent = false;
    await w.nextLook();
    await w.nextLook(); // the isolation's follow-up
    const isolate = await w.ledger.get(key);
    expect(isolate?.state).toBe('succeeded');
    expect(isolate?.history.map((h) => h.state)).toEqual(['waiting', 'planned', 'queued', 'running', 'queued', 'running', 'succeeded']);
    expect(isolate?.source).toMatchObject({ ruleId: 'risky-hosts' });
    expect(env.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(true);
    // What was planned stands: the user's action is one entry, decided once.
    expect(w.ledger.all().map((e) => `${e.kind}:${e.state}`)).toEqual(['disableUser:succeeded', 'isolateDevice:succeeded']);
    expect(w.comments()).toContainEqual(
      expect.stringMatching(/^Sentinel Responder — waited for data: nothing waits any more \(look 2 of 5\)\n- isolateDevice on /),
    );
  });

  it('looks again on the schedule, then holds what still waits for a human, with the reason, for an analyst to approve', async () => {
    const w = world();
    const { decision } = await w.engine.submit(incident(), 'relay');
    const key = decision.waiting[0]!.idempotencyKey;
    for (let look = 0; look < 5; look++) await w.nextLook();
    // 45 s (the budget's refill, over 30 s), then 1, 2 and 5 minutes; no fifth.
    expect(w.looks.map((l) => [(l.message as { attempt: number }).attempt, l.afterMs])).toEqual([
      [1, 45_000],
      [2, 60_000],
      [3, 120_000],
      [4, 300_000],
    ]);
    const held = await w.ledger.get(key);
    expect(held).toMatchObject({
      state: 'pending-approval',
      stateReason: `needs-approval: device risk still unavailable after 5 evaluations (wks-042.contoso.com: ${SPENT}): held for a human`,
      params: { isolationType: 'Full' },
      source: expect.objectContaining({ ruleId: 'risky-hosts' }),
    });
    expect(held?.history.map((h) => h.state)).toEqual(['waiting', 'waiting', 'waiting', 'waiting', 'pending-approval']);
    expect(w.comments()).toContainEqual(expect.stringMatching(/^Sentinel Responder — isolateDevice on .*: HELD: needs an analyst\n/));
    expect(w.comments()).toContainEqual(
      expect.stringMatching(
        /^Sentinel Responder — waited for data: nothing waits any more \(look 5 of 5\)\n- isolateDevice on .*: pending-approval: needs-approval: device risk still unavailable/,
      ),
    );

    // The incident's next update, the budget still spent: the hold stands (the first decision on an action stands), and
    // no new round of looks starts for it.
    const update = await w.engine.submit(incident(), 'relay');
    expect(update.decision.waiting).toEqual([]);
    expect(update.decision.skipped).toContainEqual(
      expect.objectContaining({ idempotencyKey: key, reason: 'already-done', detail: expect.stringMatching(/^recorded pending-approval/) }),
    );
    expect(w.looks).toHaveLength(4);

    // An analyst approves it: it runs as any approved action does (the budget has freed up meanwhile).
    w.state.spent = false;
    await w.analysts.approve(key, ANALYST, 'confirmed with the device owner');
    await w.nextLook();
    expect((await w.ledger.get(key))?.state).toBe('succeeded');
    expect(env.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)?.isolated).toBe(true);
  });

  it('ends a wait as not needed when the data, once read, does not make the rule want the action', async () => {
    const w = world();
    const { decision } = await w.engine.submit(incident(), 'relay');
    env.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)!.riskScore = 'Low';
    w.state.spent = false;
    await w.nextLook();
    expect(await w.ledger.get(decision.waiting[0]!.idempotencyKey)).toMatchObject({
      state: 'not-needed',
      stateReason: 'the data it waited for was read: rule risky-hosts does not apply (no device with deviceRisk High)',
    });
    expect(env.sandbox.tenant.count('POST', /\/isolate$/)).toBe(0);
    expect(w.queue.stats().scheduled).toBe(0);
  });

  it('holds what waits when its look cannot happen: the incident can no longer be read, or the look was dead-lettered', async () => {
    const unreadable = world();
    const first = (await unreadable.engine.submit(incident(), 'relay')).decision.waiting[0]!.idempotencyKey;
    env.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!.properties.severity = 'Catastrophic';
    await unreadable.nextLook();
    expect(await unreadable.ledger.get(first)).toMatchObject({
      state: 'pending-approval',
      stateReason: expect.stringMatching(/^held for a human: the incident could not be read again to look for its data: .*severity: expected one of/),
    });

    env.sandbox.reset();
    const lost = world();
    const second = (await lost.engine.submit(incident(), 'relay')).decision.waiting[0]!.idempotencyKey;
    expect(await lost.loseFirstLook()).toMatchObject({ received: 1, recorded: 1, actions: 1 });
    expect(await lost.ledger.get(second)).toMatchObject({
      state: 'pending-approval',
      stateReason:
        'held for a human: the look for its data was dead-lettered by Service Bus: MaxDeliveryCountExceeded (could not be consumed after 10 delivery attempts)',
    });
    expect(lost.comments()).toContainEqual(expect.stringMatching(/^Sentinel Responder — isolateDevice on .*: HELD: needs an analyst\n/));
  });

  it('holds what waited when its target is no longer among the incident entities ARM lists: the look could not judge it', async () => {
    const w = world();
    const { decision } = await w.engine.submit(incident(), 'relay');
    const sentinel = env.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!;
    sentinel.entities = sentinel.entities.filter((e) => (e as { kind: string }).kind !== 'Host');
    w.state.spent = false;
    await w.nextLook();
    expect(await w.ledger.get(decision.waiting[0]!.idempotencyKey)).toMatchObject({
      state: 'pending-approval',
      stateReason: "held for a human: wks-042.contoso.com is no longer among the incident's entities as ARM lists them, so its data could not be read again",
    });
  });

  it('ends a wait whose action the look keys by the directory id it read (a UPN resolved to the object id) as that action', async () => {
    const w = world();
    w.state.directorySpent = true;
    // The account by UPN only, in the payload and in ARM: its key is the UPN's until the directory says who it is.
    const sentinel = env.sandbox.tenant.incidents.get(SAMPLE_INCIDENT_ID.toLowerCase())!;
    for (const entity of sentinel.entities as Array<{ properties: Record<string, unknown> }>) delete entity.properties.aadUserId;
    const body = sampleIncident();
    for (const entity of body.object.properties.relatedEntities) delete entity.properties.aadUserId;
    const { decision } = await w.engine.submit(normalizeSentinelPayload(body), 'relay');
    const byUpn = decision.waiting.find((a) => a.kind === 'disableUser')!;
    expect(byUpn).toMatchObject({ data: ['userRisk'], target: { type: 'user', upn: 'adele.vance@contoso.com' } });
    w.state.directorySpent = false;
    await w.nextLook();
    const planned = w.ledger.all().find((e) => e.kind === 'disableUser' && e.key !== byUpn.idempotencyKey)!;
    expect(planned).toMatchObject({ target: { id: DEMO.adele }, state: 'succeeded' });
    expect(await w.ledger.get(byUpn.idempotencyKey)).toMatchObject({
      state: 'not-needed',
      stateReason: `the same action, keyed by the directory's id once it was read: ${planned.key}`,
    });
  });

  it('holds at once what would wait when the signal cannot be read again (no incident ARM id)', async () => {
    const w = world();
    const { incident: _none, ...alone } = incident();
    const { decision } = await w.engine.submit({ ...alone, subject: 'alert-1' }, 'relay');
    expect(decision.waiting).toEqual([]);
    expect(decision.skipped).toEqual([
      expect.objectContaining({
        kind: 'isolateDevice',
        reason: 'needs-approval',
        detail: `device risk unavailable, and this signal is not evaluated again (wks-042.contoso.com: ${SPENT}): held for a human`,
      }),
    ]);
    expect(w.looks).toEqual([]);
    await w.queue.idle();
    expect(w.ledger.all().map((e) => `${e.kind}:${e.state}`)).toEqual(['disableUser:succeeded', 'isolateDevice:pending-approval']);
  });

  it('looks again at a risk record that waited for the directory, the record travelling with the look, and acts then', async () => {
    const w = world();
    w.state.directorySpent = true;
    const { decision } = await w.engine.submit(riskSignal(), 'risk-event-hub');
    const key = decision.waiting[0]!.idempotencyKey;
    expect(decision.waiting).toEqual([expect.objectContaining({ kind: 'disableUser', ruleId: 'risky-users', data: ['userRisk'] })]);
    expect(decision.notes).toContainEqual(expect.stringMatching(/^1 action\(s\) wait for data: the risk record is evaluated again at .+ \(look 2 of 5\)/));
    expect(w.looks).toEqual([
      {
        message: expect.objectContaining({ type: 'reevaluateRisk', subject: riskSignal().subject, source: 'risk', attempt: 1, reason: 'waitingForData' }),
        afterMs: 45_000,
      },
    ]);
    // The look is small and carries only what the normalizer reads.
    expect(JSON.stringify(w.looks[0]!.message).length).toBeLessThan(2_000);
    w.state.directorySpent = false;
    await w.nextLook();
    expect(await w.ledger.get(key)).toMatchObject({ state: 'succeeded', source: { type: 'risk' } });
    expect(env.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(false);
  });

  it("holds a risk record's wait when its look cannot read the same risk again, or the look was dead-lettered (attack)", async () => {
    const tampered = world();
    tampered.state.directorySpent = true;
    const first = (await tampered.engine.submit(riskSignal(), 'risk-event-hub')).decision.waiting[0]!.idempotencyKey;
    // A look whose record names another user than its subject says: refused, never acted on.
    const look = tampered.looks[0]!.message as RiskReevaluation;
    const forged = { ...look, waitingFor: '0'.repeat(16), record: { ...look.record, properties: { ...look.record.properties, id: DEMO.megan } } };
    await tampered.worker.handleMessage(forged, { messageId: 'forged', deliveryCount: 1, enqueuedTimeUtc: new Date().toISOString() });
    expect(await tampered.ledger.get(first)).toMatchObject({
      state: 'pending-approval',
      stateReason: expect.stringMatching(/^held for a human: the risk record could not be read again to look for its data: .*reads as risk:user:/),
    });
    expect(tampered.ledger.all().filter((e) => e.target.type === 'user' && e.target.id === DEMO.megan)).toEqual([]);

    env.sandbox.reset();
    const lost = world();
    lost.state.directorySpent = true;
    const second = (await lost.engine.submit(riskSignal(), 'risk-event-hub')).decision.waiting[0]!.idempotencyKey;
    expect(await lost.loseFirstLook()).toMatchObject({ received: 1, recorded: 1, actions: 1 });
    expect(await lost.ledger.get(second)).toMatchObject({
      state: 'pending-approval',
      stateReason: expect.stringMatching(/^held for a human: the look for its data was dead-lettered/),
    });
  });

  it("reads the user's risk again on a sweep's look: the level it read is minutes old, and a look flipped to sweep gains no trust (attack)", async () => {
    // The riskyUsers sweep's own look: Adele's risk is dismissed before it comes, so the level it carries is stale.
    const stale = world();
    stale.state.directorySpent = true;
    const waited = (await stale.engine.submit({ ...riskSignal(), source: 'sweep' }, 'sweep:riskyUsers')).decision.waiting[0]!.idempotencyKey;
    expect(stale.looks[0]!.message).toMatchObject({ type: 'reevaluateRisk', source: 'sweep' });
    env.sandbox.tenant.riskyUsers.delete(DEMO.adele);
    stale.state.directorySpent = false;
    await stale.nextLook();
    expect(env.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(true);
    expect((await stale.ledger.get(waited))?.state).not.toBe('succeeded');

    // A look of the event stream rewritten to say the sweep read it, at high: ID Protection (medium) decides, not the message.
    env.sandbox.reset();
    const flipped = world();
    flipped.state.directorySpent = true;
    const flippedKey = (await flipped.engine.submit(riskSignal(), 'risk-event-hub')).decision.waiting[0]!.idempotencyKey;
    const look = flipped.looks[0]!.message as RiskReevaluation;
    const record = { ...look.record, properties: { ...look.record.properties, riskLevel: 'high' } };
    env.sandbox.tenant.setRisk(DEMO.adele, 'medium');
    flipped.state.directorySpent = false;
    await flipped.worker.handleMessage(
      { ...look, source: 'sweep', record },
      { messageId: 'flipped', deliveryCount: 1, enqueuedTimeUtc: new Date().toISOString() },
    );
    await flipped.queue.idle();
    expect(env.sandbox.tenant.users.get(DEMO.adele)?.accountEnabled).toBe(true);
    // Not refused for saying sweep (the stream and the sweep may both bring one subject): decided on ID Protection's level.
    expect(await flipped.ledger.get(flippedKey)).toMatchObject({ state: 'not-needed' });
  });

  it("refuses a detection's look whose record names another user than the one its wait is for (attack)", async () => {
    const w = world();
    w.state.directorySpent = true;
    const body = JSON.parse(readFileSync(join(__dirname, '../fixtures/risk/UserRiskEvents.json'), 'utf8')) as { records: unknown[] };
    const [read] = normalizeRiskRecords({ records: [body.records[0]] });
    if (read?.status !== 'signal') throw new Error('the UserRiskEvents fixture no longer reads as a signal');
    const first = (await w.engine.submit(read.signal, 'risk-event-hub')).decision.waiting[0]!.idempotencyKey;
    // Same detection id and state (the subject), another user: Megan, at high risk herself now.
    env.sandbox.tenant.setRisk(DEMO.megan, 'high');
    const look = w.looks[0]!.message as RiskReevaluation;
    const forged = {
      ...look,
      record: {
        ...look.record,
        properties: { ...look.record.properties, userId: DEMO.megan, userPrincipalName: 'megan.bowen@contoso.com', userDisplayName: 'Megan Bowen' },
      },
    };
    w.state.directorySpent = false;
    await w.worker.handleMessage(forged, { messageId: 'forged', deliveryCount: 1, enqueuedTimeUtc: new Date().toISOString() });
    await w.queue.idle();
    expect(env.sandbox.tenant.users.get(DEMO.megan)?.accountEnabled).toBe(true);
    expect(w.ledger.all().filter((e) => e.target.type === 'user' && e.target.id === DEMO.megan)).toEqual([]);
    expect(await w.ledger.get(first)).toMatchObject({ state: 'pending-approval' });
  });

  it('does not wait for data unknown for good: Defender has no such device (404), so the rule does not match, as before', async () => {
    const w = world();
    w.state.spent = false;
    env.sandbox.faults.add({
      method: 'GET',
      path: /^\/api\/machines/,
      count: 5,
      status: 404,
      body: { error: { code: 'ResourceNotFound', message: 'no machine' } },
    });
    const { decision } = await w.engine.submit(incident(), 'relay');
    expect(decision.waiting).toEqual([]);
    expect(decision.actions.map((a) => a.kind)).toEqual(['disableUser']);
    expect(w.looks).toEqual([]);
  });
  it('looks again for a wait that begins anew within the duplicate window after an earlier wait on the same action ended (attack)', async () => {
    const w = world();
    const key = (await w.engine.submit(incident(), 'relay')).decision.waiting[0]!.idempotencyKey;
    // The first look reads the data: the rule no longer wants the device isolated.
    env.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)!.riskScore = 'Low';
    w.state.spent = false;
    w.state.now += 60_000;
    w.queue.releaseScheduled();
    await w.queue.idle();
    expect((await w.ledger.get(key))?.state).toBe('not-needed');
    // Minutes later the incident is updated, the device is high risk again, and its risk cannot be read for now.
    env.sandbox.tenant.machines.get(DEMO_DEVICES.wks042)!.riskScore = 'High';
    w.state.spent = true;
    w.state.now += 60_000;
    await w.engine.submit(incident(), 'relay');
    expect((await w.ledger.get(key))?.state).toBe('waiting');
    // A look must come for it: the wait ends in a verdict, never stays 'waiting' with nothing to end it.
    w.state.spent = false;
    for (let i = 0; i < 5; i++) await w.nextLook();
    expect((await w.ledger.get(key))?.state).not.toBe('waiting');
  });
  it('still makes one chain of looks of two deliveries of one incident, and of a look delivered twice (attack)', async () => {
    const w = world();
    await w.engine.submit(incident(), 'relay');
    await w.engine.submit(incident(), 'relay');
    expect(w.queue.stats().scheduled).toBe(1);
    const [look] = w.looks;
    w.state.now += 60_000;
    // The look is delivered twice (at-least-once): each schedules the next, one of them is dropped as a duplicate.
    await w.worker.handleMessage(look!.message, { messageId: 'look', deliveryCount: 1, enqueuedTimeUtc: new Date(w.state.now).toISOString() });
    await w.worker.handleMessage(look!.message, { messageId: 'look', deliveryCount: 2, enqueuedTimeUtc: new Date(w.state.now).toISOString() });
    expect(w.queue.stats().scheduled).toBe(2);
  });
});
