import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckpointStore } from '@azure/event-hubs';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { consumeHub, hubConnectionOf, retryDelayMs } from '../../cli/eventHubConsumer';
import { SharedStateCheckpointStore } from '../../cli/hubCheckpoints';
import { riskEventHub } from '../../functions/riskEvents';
import { EventHubsEmulator } from '../../sandbox/eventHubs';
import { DEMO } from '../../sandbox/tenant';
import { registry, type EventHubRegistration } from '../../shared/azure/registry';
import { MemorySharedState } from '../../shared/coordination/sharedState';
import { EngineUnderTest } from '../support/engine';

/**
 * ID Protection's risk logs from their Event Hub, as the local host consumes it with @azure/event-hubs (and as the
 * Functions host would): the emulator speaks AMQP to the real client; the engine decides on the sandbox tenant.
 */
const POLICY = `version: 1
mode: enforce
rules:
  - { id: risky-users, when: { source: [risk], entity: account, userRisk: [high] }, then: [disableUser] }
`;

const fixture = (name: string): unknown => JSON.parse(readFileSync(join(__dirname, '../fixtures/risk', `${name}.json`), 'utf8')) as unknown;

let emulator: EventHubsEmulator;
let engine: EngineUnderTest;
let hubNumber = 0;
const running: Array<{ close(): Promise<void> }> = [];
const logged: string[] = [];

beforeAll(async () => {
  [emulator, engine] = await Promise.all([new EventHubsEmulator().start(), EngineUnderTest.start({ RESPONDER_POLICY: POLICY })]);
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.close()));
});
afterAll(async () => {
  await Promise.all([emulator.stop(), engine.stop()]);
});

const registration = (): EventHubRegistration => registry.eventHubs.find((r) => r.name === 'riskEventHub') as EventHubRegistration;

/** The bodies of each batch the trigger was handed, in order. */
const batches: unknown[][] = [];

/** The trigger consuming `hub`, its checkpoints in `shared`; each batch it is handed is noted in `batches`. */
async function consume(hub: string, shared = new MemorySharedState(), checkpoints: CheckpointStore = new SharedStateCheckpointStore(shared)): Promise<void> {
  const connection = hubConnectionOf(registration(), { EventHubConnection: emulator.connectionString, RESPONDER_RISK_EVENT_HUB: hub });
  if (!connection) throw new Error('no connection');
  const real = registration();
  const noted: EventHubRegistration = { ...real, handler: (messages, context) => (batches.push(messages), real.handler(messages, context)) };
  const consumer = await consumeHub(noted, connection, checkpoints, (...args) => logged.push(args.join(' ')), {
    authorityHost: 'https://login.microsoftonline.com',
    maxWaitTimeInSeconds: 0.1,
    balanceEveryMs: 50,
  });
  running.push(consumer);
}

async function until(condition: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 25))) if (await condition()) return;
  throw new Error(`timed out waiting for ${what}`);
}

/** Each partition's checkpoint, `partition:sequence number`. */
let hubShared = new MemorySharedState();
async function checkpointsOf(hub: string, shared = hubShared): Promise<string[]> {
  const store = new SharedStateCheckpointStore(shared);
  const namespace = new URL(emulator.connectionString.replace(/^Endpoint=sb:/, 'http:').split(';')[0] as string).hostname;
  return (await store.listCheckpoints(namespace, hub, '$Default')).map((c) => `${c.partitionId}:${c.sequenceNumber}`);
}

const disables = async () => (await engine.ledger.list({})).filter((e) => e.kind === 'disableUser');

describe('the risk-event hub', () => {
  it('decides the records of each event from the hub, and passes over an event that is not a body of records', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY });
    const hub = `risk${++hubNumber}`;
    emulator.createHub(hub, { partitionCount: 2 });
    emulator.append(hub, ['not a body of records', fixture('RiskyUsers'), fixture('mixed-batch')], { partitionId: '0' });
    hubShared = new MemorySharedState();
    await consume(hub, hubShared);
    await until(async () => (await checkpointsOf(hub)).includes('0:2'), 'the checkpoint after the three events');
    // Adele, at high risk: from the RiskyUsers event, and from the batch's detection and record of her (each its own).
    const entries = await disables();
    expect(entries.length).toBeGreaterThan(0);
    for (const entry of entries) {
      expect(entry).toMatchObject({ target: { id: DEMO.adele }, source: { type: 'risk', subject: expect.stringMatching(/^risk:(user|detection):/) } });
      expect(entry.history[0]?.by).toBe('risk-event-hub');
    }
    // Handed over with the records after it, it did not hold them up.
    expect(batches.flat()).toEqual(['not a body of records', fixture('RiskyUsers'), fixture('mixed-batch')]);
    // What could not be read is kept for a human (responder deadletters): the event, and the one bad record of the batch.
    expect((await engine.ledger.listDeadLetters()).map((d) => [d.messageId, d.by, d.reason, d.description])).toEqual([
      ['risk-event:0:0', 'risk-event-hub', 'UnreadableRiskLog', 'expected a JSON object { "records": [ … ] }, got the string "not a body of records"'],
      ['risk-event:0:2:2', 'risk-event-hub', 'UnreadableRiskLog', "records[2].properties.userId: is required (the user's Entra object id)"],
    ]);
    expect(logged).toEqual([]); // no batch failed
  });

  it('resumes after its checkpoint: a restarted consumer decides only what came since, and a redelivery acts once', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY });
    engine.sandbox.tenant.setRisk(DEMO.jsmith, 'high', 'confirmedCompromised');
    const hub = `risk${++hubNumber}`;
    emulator.createHub(hub, { partitionCount: 1 });
    const shared = new MemorySharedState();
    const records = (fixture('RiskyUsers') as { records: unknown[] }).records;
    emulator.append(hub, [{ records: [records[0]] }]);
    await consume(hub, shared);
    await until(async () => (await disables()).length === 1, 'the first disable');
    await until(async () => (await checkpointsOf(hub, shared)).includes('0:0'), 'the first checkpoint');
    await Promise.all(running.splice(0).map((r) => r.close()));
    batches.length = 0;
    emulator.append(hub, [{ records: [records[1]] }, { records: [records[0]] }]);
    await consume(hub, shared);
    await until(async () => (await checkpointsOf(hub, shared)).includes('0:2'), 'the checkpoint after the new events');
    // The first event was not handed over again; the copy of it sent later found its action already recorded.
    expect(batches.flat()).toEqual([{ records: [records[1]] }, { records: [records[0]] }]);
    expect((await disables()).map((e) => e.target.id).sort()).toEqual([DEMO.adele, DEMO.jsmith].sort());
  });

  it('reads on after a checkpoint it could not write, rather than leaving the partition unread until its ownership lapses', async () => {
    engine.configure({ RESPONDER_POLICY: POLICY });
    engine.sandbox.tenant.setRisk(DEMO.jsmith, 'high', 'confirmedCompromised');
    const hub = `risk${++hubNumber}`;
    emulator.createHub(hub, { partitionCount: 1 });
    const store = new SharedStateCheckpointStore(new MemorySharedState());
    const write = store.updateCheckpoint.bind(store);
    let failed = false;
    store.updateCheckpoint = (checkpoint) => (failed ? write(checkpoint) : ((failed = true), Promise.reject(new Error('table storage unreachable'))));
    const records = (fixture('RiskyUsers') as { records: unknown[] }).records;
    emulator.append(hub, [{ records: [records[0]] }]);
    await consume(hub, undefined, store);
    await until(() => failed, 'the checkpoint that fails');
    emulator.append(hub, [{ records: [records[1]] }]);
    await until(async () => (await disables()).length === 2, 'the disable the event after it asks for');
    expect(logged).toContainEqual(expect.stringContaining('table storage unreachable'));
  });

  it('retries a batch that fails on backoff, and checkpoints once it is handled', () => {
    expect(riskEventHub).toBeTypeOf('function');
    const { retry } = registration();
    expect(retry).toMatchObject({ strategy: 'exponentialBackoff', maxRetryCount: 8 });
    expect([0, 1, 2, 5, 8].map((n) => retryDelayMs(retry, n))).toEqual([10_000, 20_000, 40_000, 300_000, 300_000]);
    expect(hubConnectionOf(registration(), {})).toBeUndefined(); // no connection: the trigger is off
    expect(() => hubConnectionOf(registration(), { EventHubConnection: 'Endpoint=sb://x/' })).toThrow(/RESPONDER_RISK_EVENT_HUB names no event hub/);
  });
});
