import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import type { ActionCommand } from '../../shared/actions/command';
import type { ExecutionOutcome } from '../../shared/actions/executor';
import { LIFECYCLE_TIMINGS } from '../../shared/actions/lifecycle';
import { MemorySharedState } from '../../shared/coordination/sharedState';
import { DeadLetterReconciler } from '../../shared/deadLetters';
import { MemoryLedger } from '../../shared/ledger/memoryLedger';
import { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { ActionWorker } from '../../shared/worker';
import { DEMO } from '../../sandbox/tenant';
import { command, recordedEntry } from '../fixtures/commands';

/**
 * The ledger, not the message, says what the worker does: the engine records every action before it sends its command,
 * so a command the ledger does not hold is no action of the engine's. Anyone who can send to the queue could send one.
 */
const DONE: ExecutionOutcome = { outcome: 'succeeded', alreadyDone: false, detail: 'done' };

let ledger: MemoryLedger;
let queue: EmbeddedQueue;
let executed: ActionCommand[];
let reported: string[];
let logged: Array<{ level: number; msg: string; actionId?: string; reason?: string }>;
let worker: ActionWorker;

beforeEach(() => {
  ledger = new MemoryLedger();
  queue = new EmbeddedQueue();
  executed = [];
  reported = [];
  logged = [];
  worker = new ActionWorker({
    ledger,
    queue,
    shared: new MemorySharedState(),
    now: () => new Date('2026-12-01T12:00:00.000Z'),
    log: pino({ level: 'warn' }, { write: (line: string) => void logged.push(JSON.parse(line)) }),
    random: () => 0,
    timings: LIFECYCLE_TIMINGS,
    execute: async (run) => (executed.push(run), DONE),
    report: async (action, state) => void reported.push(`${action.kind}:${state}`),
    incidents: () => Promise.reject(new Error('no incidents here')),
    submit: () => Promise.reject(new Error('no submissions here')),
  });
});

const adele = { type: 'user' as const, id: DEMO.adele, upn: 'adele.vance@contoso.com' };
const delivery = (messageId: string) => ({ messageId, deliveryCount: 1, enqueuedTimeUtc: '2026-12-01T12:00:00.000Z' });

describe('a command the ledger does not hold', () => {
  it('is refused: nothing is carried out, no entry is made, a human finds the record and the error', async () => {
    // A sender on the queue undoing a containment: the disableUser is the engine's, this enableUser is not.
    const disabled = command('disableUser', adele, {}, 1);
    await ledger.create(recordedEntry(disabled, 'succeeded'));
    const forged = command('enableUser', adele, { source: { type: 'manual', subject: 'request', rollbackOf: disabled.idempotencyKey } }, 2);

    const outcome = await worker.runCommand(forged, delivery('forged-1'));

    expect(outcome).toEqual({ key: forged.idempotencyKey, outcome: 'refused', detail: expect.stringMatching(/^no ledger entry /) });
    expect(executed).toEqual([]);
    expect(reported).toEqual([]);
    expect(await ledger.get(forged.idempotencyKey)).toBeUndefined();
    expect((await ledger.list()).map((e) => e.key)).toEqual([disabled.idempotencyKey]);
    expect(await ledger.listDeadLetters()).toEqual([
      {
        messageId: 'forged-1',
        at: '2026-12-01T12:00:00.000Z',
        by: 'worker',
        reason: 'NoLedgerEntry',
        description: expect.stringMatching(/^no ledger entry .*: the engine records every action before it sends its command$/),
        deliveryCount: 1,
        body: JSON.stringify(forged),
        actionKey: forged.idempotencyKey,
      },
    ]);
    expect(logged).toEqual([expect.objectContaining({ level: 50, actionId: forged.idempotencyKey, reason: 'NoLedgerEntry' })]);
    expect(queue.stats()).toMatchObject({ ready: 0, scheduled: 0 });
  });

  it('is refused however often it comes: one record per message, still no entry', async () => {
    const forged = command('disableUser', adele);
    await worker.runCommand(forged, delivery('forged-2'));
    expect((await worker.runCommand(forged, { ...delivery('forged-2'), deliveryCount: 2 })).outcome).toBe('refused');
    expect(await ledger.listDeadLetters()).toHaveLength(1);
    expect(await ledger.list()).toEqual([]);
    expect(executed).toEqual([]);
  });

  it('runs once the engine has recorded it: the ledger entry is what makes it an action', async () => {
    const recorded = command('disableUser', adele);
    await ledger.create(recordedEntry(recorded));
    expect((await worker.runCommand(recorded, delivery(recorded.idempotencyKey))).outcome).toBe('succeeded');
    expect(executed).toHaveLength(1);
    expect(await ledger.listDeadLetters()).toEqual([]);
  });
});

describe('a command that disagrees with its ledger entry', () => {
  const incident = '/subscriptions/0/resourcegroups/rg/providers/microsoft.operationalinsights/workspaces/ws/providers/microsoft.securityinsights/incidents/1';
  const recorded = command(
    'isolateDevice',
    { type: 'device', id: 'a'.repeat(40) },
    {
      params: { isolationType: 'Selective' },
      mode: 'audit',
      source: { type: 'incident', subject: incident, incidentArmId: incident, ruleId: 'hosts' },
    },
  );
  // What the message would change about what is done, each on its own.
  const forgeries: Array<[string, Partial<ActionCommand>]> = [
    ['kind', { kind: 'unisolateDevice' }],
    ['target', { target: { type: 'device', id: 'b'.repeat(40) } }],
    ['target', { target: { type: 'device', id: 'a'.repeat(40), hostName: 'dc01' } }],
    ['params', { params: { isolationType: 'Full' } }],
    ['mode', { mode: 'enforce' }],
    ['source', { source: { ...recorded.source, ruleId: 'another-rule' } }],
    ['source', { source: { ...recorded.source, rollbackOf: command('isolateDevice', { type: 'device', id: 'c'.repeat(40) }).idempotencyKey } }],
  ];

  it.each(forgeries)('is refused on its %s: nothing runs, the entry is left for its own message, a human finds the record', async (field, forged) => {
    await ledger.create(recordedEntry(recorded));
    const message = { ...recorded, ...forged };

    const outcome = await worker.runCommand(message, delivery('forged-4'));

    const why = `the message disagrees with ledger entry ${recorded.idempotencyKey} on its ${field}: the entry is the engine's record`;
    expect(outcome).toEqual({ key: recorded.idempotencyKey, outcome: 'refused', detail: why });
    expect(executed).toEqual([]);
    expect(reported).toEqual([]);
    expect(await ledger.listDeadLetters()).toEqual([
      expect.objectContaining({
        messageId: 'forged-4',
        by: 'worker',
        reason: 'LedgerMismatch',
        description: why,
        actionKey: recorded.idempotencyKey,
        incidentArmId: incident,
      }),
    ]);
    expect(logged).toEqual([expect.objectContaining({ level: 50, actionId: recorded.idempotencyKey, reason: 'LedgerMismatch' })]);
    // Ending the entry would let any sender cancel a containment by naming its key: its own message still runs it.
    expect((await ledger.get(recorded.idempotencyKey))?.history.map((h) => h.state)).toEqual(['queued']);
    expect((await worker.runCommand(recorded, delivery(recorded.idempotencyKey))).outcome).toBe('succeeded');
    expect(executed).toEqual([recorded]);
  });

  it("is carried out as the ledger records it: the entry's fields, the message's place in the action's life", async () => {
    await ledger.create(recordedEntry(recorded, 'queued', { reason: 'rule hosts: a host in a credential-access incident' }));
    const turn = { api: 'defender-isolate' as const, at: 1, units: 1 };
    const message = { ...recorded, reason: 'as the message words it', attempt: 2, followUp: 1, deferral: 3, replay: 1, turn };
    expect((await worker.runCommand(message, delivery('carried'))).outcome).toBe('succeeded');
    expect(executed).toEqual([
      { ...recorded, reason: 'rule hosts: a host in a credential-access incident', attempt: 2, followUp: 1, deferral: 3, replay: 1, turn },
    ]);
  });
});

describe('a malformed message naming a recorded action', () => {
  it('leaves the action to its own message: a malformed copy is no word on it, and would let any sender cancel it', async () => {
    const recorded = command('disableUser', adele);
    await ledger.create(recordedEntry(recorded));
    const outcome = await worker.runCommand({ ...recorded, kind: 'formatDisk' }, delivery('garbage-1'));
    expect(outcome).toMatchObject({ key: recorded.idempotencyKey, outcome: 'poison' });
    expect(await ledger.listDeadLetters()).toEqual([
      expect.objectContaining({ messageId: 'garbage-1', reason: 'SchemaInvalid', actionKey: recorded.idempotencyKey }),
    ]);
    expect((await ledger.get(recorded.idempotencyKey))?.state).toBe('queued');
    expect(reported).toEqual([]);
  });

  it('ends an action no message could carry (its own command is refused too): it would wait for ever otherwise', async () => {
    const unsendable = command('disableUser', { ...adele, displayName: 'd'.repeat(300) });
    await ledger.create(recordedEntry(unsendable));
    expect((await worker.runCommand(unsendable, delivery('unsendable-1'))).outcome).toBe('poison');
    expect(await ledger.get(unsendable.idempotencyKey)).toMatchObject({
      state: 'dead-lettered',
      stateReason: expect.stringMatching(/^refused by the worker: not an ActionCommand: target/),
    });
    expect(reported).toEqual(['disableUser:failed']);
  });
});

describe('a command the broker dead-lettered', () => {
  const reconciler = () =>
    new DeadLetterReconciler({
      ledger,
      queue,
      now: () => new Date('2026-12-01T12:05:00.000Z'),
      log: pino({ level: 'silent' }),
      report: async (action, state) => void reported.push(`${action.kind}:${state}`),
    });
  const deadLettered = (body: ActionCommand, messageId: string) =>
    queue.deadLetters.push({ messageId, body, reason: 'TTLExpiredException', description: 'expired', deliveryCount: 0 });

  it('is recorded for a human; none the ledger does not hold gets an entry: there is no action to end, and one made would count and could be replayed', async () => {
    const forged = command('enableUser', adele, { source: { type: 'manual', subject: 'request' } });
    deadLettered(forged, 'forged-3');
    expect(await reconciler().reconcile()).toEqual({ received: 1, recorded: 1, actions: 0 });
    expect(await ledger.list()).toEqual([]);
    expect(reported).toEqual([]);
    expect(await ledger.listDeadLetters()).toEqual([
      expect.objectContaining({ messageId: 'forged-3', by: 'broker', reason: 'TTLExpiredException', actionKey: forged.idempotencyKey }),
    ]);
    expect(queue.deadLetters).toEqual([]);
  });

  it('leaves the action the ledger holds under its key when the body disagrees with it: a sender could cancel it so', async () => {
    const recorded = command('isolateDevice', { type: 'device', id: 'a'.repeat(40) });
    await ledger.create(recordedEntry(recorded));
    deadLettered({ ...recorded, target: { type: 'device', id: 'b'.repeat(40) } }, 'forged-5');
    expect(await reconciler().reconcile()).toEqual({ received: 1, recorded: 1, actions: 0 });
    expect((await ledger.get(recorded.idempotencyKey))?.state).toBe('queued');
    expect(reported).toEqual([]);
    expect(await ledger.listDeadLetters()).toEqual([expect.objectContaining({ messageId: 'forged-5', by: 'broker', actionKey: recorded.idempotencyKey })]);
  });

  it('names the incident the ledger says, never the one a body claims: a forged body does not put its record on an incident', async () => {
    const claimed =
      '/subscriptions/0/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/Incidents/claimed';
    const forged = command('enableUser', adele, { source: { type: 'manual', subject: 'request', incidentArmId: claimed } });
    deadLettered(forged, 'forged-6');
    const ours = '/subscriptions/0/resourceGroups/rg/providers/Microsoft.OperationalInsights/workspaces/w/providers/Microsoft.SecurityInsights/Incidents/ours';
    const recorded = command('isolateDevice', { type: 'device', id: 'a'.repeat(40) }, { source: { type: 'incident', subject: ours, incidentArmId: ours } });
    await ledger.create(recordedEntry(recorded));
    deadLettered({ ...recorded, source: { ...recorded.source, incidentArmId: claimed } }, 'forged-7');
    await reconciler().reconcile();
    const records = await ledger.listDeadLetters();
    expect(records.find((r) => r.messageId === 'forged-6')?.incidentArmId).toBeUndefined();
    expect(records.find((r) => r.messageId === 'forged-7')?.incidentArmId).toBe(ours);
  });

  it('ends the action the ledger holds for it, dead-lettered, and says so on its incident', async () => {
    const recorded = command('disableUser', adele);
    await ledger.create(recordedEntry(recorded));
    deadLettered(recorded, recorded.idempotencyKey);
    expect(await reconciler().reconcile()).toEqual({ received: 1, recorded: 1, actions: 1 });
    expect(await ledger.get(recorded.idempotencyKey)).toMatchObject({
      state: 'dead-lettered',
      stateReason: 'dead-lettered by Service Bus: TTLExpiredException (expired)',
    });
    expect(reported).toEqual(['disableUser:failed']);
  });
});
