import {
  type Checkpoint,
  type CheckpointStore,
  CloseReason,
  earliestEventPosition,
  type EventPosition,
  EventHubConsumerClient,
  EventHubProducerClient,
  latestEventPosition,
  type PartitionContext,
  type PartitionOwnership,
  type ReceivedEventData,
  type SubscribeOptions,
} from '@azure/event-hubs';
import { randomUUID } from 'node:crypto';
import rhea, { type Receiver } from 'rhea';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { EventHubsEmulator } from '../../sandbox/eventHubs';

/**
 * The Event Hubs emulator, driven by the real @azure/event-hubs client: what a consumer of a hub relies on (each event
 * once per consumer group, in order per partition, from the position it asked for or after its checkpoint, through a
 * detach) and what a producer relies on (the partition it named, or one partition per key).
 */
let emulator: EventHubsEmulator;
let hubNumber = 0;
/** Clients the case opened, closed after it. */
const open: Array<{ close(): Promise<void> }> = [];
const retryOptions = { maxRetries: 3, retryDelayInMs: 20, timeoutInMs: 4000 };
/** Short waits, so an empty batch comes back quickly: its arrival says the receiver is attached. */
const quick: SubscribeOptions = { maxBatchSize: 10, maxWaitTimeInSeconds: 0.1 };

beforeAll(async () => {
  emulator = await new EventHubsEmulator().start();
});
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.close()));
});
afterAll(async () => {
  await emulator.stop();
});

function nextHub(options?: Parameters<EventHubsEmulator['createHub']>[1]): string {
  const name = `hub${++hubNumber}`;
  emulator.createHub(name, options);
  return name;
}

function producer(hub: string): EventHubProducerClient {
  const client = new EventHubProducerClient(emulator.connectionString, hub, { retryOptions });
  open.push(client);
  return client;
}

function consumer(hub: string, consumerGroup = '$Default', checkpointStore?: CheckpointStore): EventHubConsumerClient {
  // With a checkpoint store the SDK's default balancing claims one partition a turn, a turn every 10 s.
  const options = { retryOptions, loadBalancingOptions: { strategy: 'greedy' as const, updateIntervalInMs: 50 } };
  const client = checkpointStore
    ? new EventHubConsumerClient(consumerGroup, emulator.connectionString, hub, checkpointStore, options)
    : new EventHubConsumerClient(consumerGroup, emulator.connectionString, hub, options);
  open.push(client);
  return client;
}

async function send(client: EventHubProducerClient, bodies: unknown[], target: { partitionId?: string; partitionKey?: string } = {}): Promise<void> {
  const batch = await client.createBatch(target);
  for (const body of bodies) expect(batch.tryAdd({ body })).toBe(true);
  await client.sendBatch(batch);
}

/** A subscription's record: the events each partition delivered, in order, and what else its handlers saw. */
interface Received {
  events: Array<ReceivedEventData & { partitionId: string }>;
  /** Partitions whose receiver has come back at least once, with or without events: it is attached. */
  attached: Set<string>;
  errors: Error[];
  closed: CloseReason[];
  contexts: Map<string, PartitionContext>;
}

/** Subscribe to every partition, or to one, recording what arrives; `onEvents` may checkpoint. */
function subscribe(
  client: EventHubConsumerClient,
  options: SubscribeOptions,
  partitionId?: string,
  onEvents: (events: ReceivedEventData[], context: PartitionContext) => Promise<void> = async () => undefined,
): Received {
  const received: Received = { events: [], attached: new Set(), errors: [], closed: [], contexts: new Map() };
  const handlers = {
    processEvents: async (events: ReceivedEventData[], context: PartitionContext) => {
      received.attached.add(context.partitionId);
      received.contexts.set(context.partitionId, context);
      received.events.push(...events.map((e) => ({ ...e, partitionId: context.partitionId })));
      await onEvents(events, context);
    },
    processError: async (error: Error) => void received.errors.push(error),
    processClose: async (reason: CloseReason) => void received.closed.push(reason),
  };
  // Closing the client closes its subscriptions.
  if (partitionId === undefined) client.subscribe(handlers, { ...quick, ...options });
  else client.subscribe(partitionId, handlers, { ...quick, ...options });
  return received;
}

async function until(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const bodiesOf = (received: Received, partitionId?: string) =>
  received.events.filter((e) => partitionId === undefined || e.partitionId === partitionId).map((e) => e.body);

/** A checkpoint store in memory, as the SDK's interface asks: ownership claimed by etag, a checkpoint per partition. */
class MemoryCheckpointStore implements CheckpointStore {
  readonly ownerships = new Map<string, PartitionOwnership>();
  readonly checkpoints = new Map<string, Checkpoint>();

  async listOwnership(): Promise<PartitionOwnership[]> {
    return [...this.ownerships.values()].map((o) => ({ ...o }));
  }

  async claimOwnership(requests: PartitionOwnership[]): Promise<PartitionOwnership[]> {
    const claimed: PartitionOwnership[] = [];
    for (const request of requests) {
      if (this.ownerships.get(request.partitionId)?.etag !== request.etag) continue; // someone else claimed it first
      const ownership = { ...request, etag: randomUUID(), lastModifiedTimeInMs: Date.now() };
      this.ownerships.set(request.partitionId, ownership);
      claimed.push(ownership);
    }
    return claimed;
  }

  async updateCheckpoint(checkpoint: Checkpoint): Promise<void> {
    this.checkpoints.set(checkpoint.partitionId, { ...checkpoint });
  }

  async listCheckpoints(): Promise<Checkpoint[]> {
    return [...this.checkpoints.values()];
  }
}

describe('Event Hubs emulator with the real SDK', () => {
  it('keeps a batch sent to a partition on that partition, and delivers it with sequence numbers, string offsets and properties', async () => {
    const hub = nextHub();
    const client = producer(hub);
    const batch = await client.createBatch({ partitionId: '1' });
    for (const n of [1, 2, 3]) batch.tryAdd({ body: { n }, properties: { kind: 'risk' }, contentType: 'application/json' });
    const before = Date.now();
    await client.sendBatch(batch);

    expect(emulator.eventsIn(hub, '0')).toEqual([]);
    const stored = emulator.eventsIn(hub, '1');
    expect(stored.map((e) => e.sequenceNumber)).toEqual([0, 1, 2]);

    const received = subscribe(consumer(hub), { startPosition: earliestEventPosition }, '1');
    await until(() => received.events.length === 3, 'three events');
    expect(received.events.map((e) => [e.body, e.sequenceNumber, e.offset, e.properties, e.contentType])).toEqual(
      stored.map((e, i) => [{ n: i + 1 }, i, String(e.offset), { kind: 'risk' }, 'application/json']),
    );
    expect(stored.map((e) => e.offset)).toEqual([...new Set(stored.map((e) => e.offset))].sort((a, b) => a - b)); // byte offsets, rising
    expect(stored[1]?.offset).toBeGreaterThan(2);
    expect(received.events[0]?.enqueuedTimeUtc.getTime()).toBeGreaterThanOrEqual(before);
  });

  it('starts a reader at the earliest event, the next one to come, an offset, a sequence number or an enqueued time', async () => {
    const hub = nextHub();
    const client = producer(hub);
    await send(client, ['a', 'b'], { partitionId: '0' });
    await new Promise((resolve) => setTimeout(resolve, 5));
    const between = new Date();
    await new Promise((resolve) => setTimeout(resolve, 5));
    await send(client, ['c', 'd'], { partitionId: '0' });
    const offsetOfB = String(emulator.eventsIn(hub, '0')[1]?.offset);

    const positions: Record<string, EventPosition> = {
      earliest: earliestEventPosition,
      latest: latestEventPosition,
      afterOffset: { offset: offsetOfB },
      atOffset: { offset: offsetOfB, isInclusive: true },
      afterSequenceNumber: { sequenceNumber: 2 },
      atSequenceNumber: { sequenceNumber: 2, isInclusive: true },
      afterTime: { enqueuedOn: between },
    };
    // One subscription to a partition per client: the SDK refuses a second.
    const readers = Object.fromEntries(Object.entries(positions).map(([name, startPosition]) => [name, subscribe(consumer(hub), { startPosition }, '0')]));
    await until(() => Object.values(readers).every((r) => r.attached.has('0')), 'every reader attached');
    await send(client, ['e'], { partitionId: '0' });
    await until(() => Object.values(readers).every((r) => r.events.at(-1)?.body === 'e'), 'the live event at every reader');

    expect(Object.fromEntries(Object.entries(readers).map(([name, r]) => [name, bodiesOf(r).join('')]))).toEqual({
      earliest: 'abcde',
      latest: 'e',
      afterOffset: 'cde',
      atOffset: 'bcde',
      afterSequenceNumber: 'de',
      atSequenceNumber: 'cde',
      afterTime: 'cde',
    });
  });

  it('gives every consumer group every event, spread round-robin over the partitions', async () => {
    const hub = nextHub({ consumerGroups: ['audit'] });
    const client = producer(hub);
    for (const n of [1, 2, 3, 4]) await send(client, [n]);
    expect([emulator.eventsIn(hub, '0').length, emulator.eventsIn(hub, '1').length]).toEqual([2, 2]);

    const groups = ['$Default', 'audit'].map((group) => subscribe(consumer(hub, group), { startPosition: earliestEventPosition }));
    await until(() => groups.every((g) => g.events.length === 4), 'four events in each group');
    for (const group of groups) expect(bodiesOf(group).sort()).toEqual([1, 2, 3, 4]);
    expect(bodiesOf(groups[0] as Received, '0')).toEqual(bodiesOf(groups[1] as Received, '0'));

    const missing = new EventHubConsumerClient('missing', emulator.connectionString, hub, { retryOptions: { maxRetries: 0, timeoutInMs: 2000 } });
    open.push(missing);
    const refused = subscribe(missing, { startPosition: earliestEventPosition }, '0');
    await until(() => refused.errors.length > 0, 'a refusal for an unknown consumer group');
    expect(refused.errors[0]?.message).toMatch(/could not be found/);
  });

  it('resumes a checkpointed consumer, in a new client, after its checkpoint on each partition', async () => {
    const hub = nextHub();
    const client = producer(hub);
    await send(client, ['p0-a', 'p0-b', 'p0-c'], { partitionId: '0' });
    await send(client, ['p1-a', 'p1-b'], { partitionId: '1' });
    const store = new MemoryCheckpointStore();
    const checkpointAfter = new Set(['p0-b', 'p1-a']);

    const first = consumer(hub, '$Default', store);
    const firstRead = subscribe(first, { startPosition: earliestEventPosition }, undefined, async (events, context) => {
      for (const event of events) if (checkpointAfter.has(event.body as string)) await context.updateCheckpoint(event);
    });
    await until(() => firstRead.events.length === 5 && store.checkpoints.size === 2, 'five events and two checkpoints');
    await first.close();
    expect(store.checkpoints.get('0')).toMatchObject({ sequenceNumber: 1, offset: String(emulator.eventsIn(hub, '0')[1]?.offset) });
    await send(client, ['p0-d'], { partitionId: '0' });
    await send(client, ['p1-c'], { partitionId: '1' });

    const resumed = subscribe(consumer(hub, '$Default', store), { startPosition: earliestEventPosition });
    await until(() => resumed.events.length === 4, 'four events after the checkpoints');
    expect([bodiesOf(resumed, '0'), bodiesOf(resumed, '1')]).toEqual([
      ['p0-c', 'p0-d'],
      ['p1-b', 'p1-c'],
    ]);
  });

  it('keeps every event of a partition key on one partition, sent by the SDK or appended by the test', async () => {
    const hub = nextHub({ partitionCount: 4 });
    const client = producer(hub);
    for (const n of [1, 2, 3]) await send(client, [`user-1:${n}`], { partitionKey: 'user-1' });
    emulator.append(hub, ['user-1:4'], { partitionKey: 'user-1' });
    for (const n of [1, 2]) await send(client, [`user-2:${n}`], { partitionKey: 'user-2' });

    const partitionsOf = (prefix: string) =>
      ['0', '1', '2', '3'].filter((id) => emulator.eventsIn(hub, id).some((e) => String(decodeBody(e.message.body)).startsWith(prefix)));
    expect(partitionsOf('user-1')).toHaveLength(1);
    expect(partitionsOf('user-2')).toHaveLength(1);
    const [user1Partition] = partitionsOf('user-1');

    const received = subscribe(consumer(hub), { startPosition: earliestEventPosition }, user1Partition);
    await until(() => received.events.filter((e) => e.partitionKey === 'user-1').length === 4, 'the four user-1 events');
    expect(received.events.filter((e) => e.partitionKey === 'user-1').map((e) => e.body)).toEqual(['user-1:1', 'user-1:2', 'user-1:3', 'user-1:4']);
  });

  it('reports the hub and each partition as they are: ids, emptiness, last sequence number, offset and time', async () => {
    const hub = nextHub({ partitionCount: 3 });
    const client = producer(hub);
    expect(await client.getPartitionIds()).toEqual(['0', '1', '2']);
    const empty = await client.getPartitionProperties('2');
    expect(empty).toMatchObject({ eventHubName: hub, partitionId: '2', isEmpty: true, beginningSequenceNumber: 0, lastEnqueuedSequenceNumber: -1 });

    await send(client, [1, 2], { partitionId: '2' });
    const last = emulator.eventsIn(hub, '2')[1];
    const reader = consumer(hub);
    expect(await reader.getEventHubProperties()).toMatchObject({ name: hub, partitionIds: ['0', '1', '2'] });
    expect(await reader.getPartitionProperties('2')).toEqual({
      eventHubName: hub,
      partitionId: '2',
      isEmpty: false,
      beginningSequenceNumber: 0,
      lastEnqueuedSequenceNumber: 1,
      lastEnqueuedOffset: String(last?.offset),
      lastEnqueuedOnUtc: new Date(last?.enqueuedAt ?? 0),
    });
    await expect(client.getPartitionProperties('7')).rejects.toMatchObject({ code: 'ArgumentOutOfRangeError' });
    const nowhere = producer('no-such-hub');
    await expect(nowhere.getEventHubProperties()).rejects.toThrow(/could not be found/);
    await expect(nowhere.sendBatch([{ body: 'lost' }])).rejects.toThrow(/could not be found/);
  });

  it('pushes an event appended by the test hook (a diagnostic-settings record batch) to a live subscriber', async () => {
    const hub = nextHub();
    const received = subscribe(consumer(hub), { startPosition: latestEventPosition, trackLastEnqueuedEventProperties: true });
    await until(() => received.attached.size === 2, 'both partitions attached');
    const body = {
      records: [{ time: '2024-05-01T10:00:00Z', category: 'RiskyUsers', properties: { userPrincipalName: 'adele@contoso.com', riskLevel: 'high' } }],
    };

    const [appended] = emulator.append(hub, [body], { partitionId: '1' });
    await until(() => received.events.length === 1, 'the appended event');
    expect(received.events.map((e) => [e.partitionId, e.body, e.sequenceNumber])).toEqual([['1', body, 0]]);
    expect(received.contexts.get('1')?.lastEnqueuedEventProperties).toMatchObject({ sequenceNumber: 0, offset: String(appended?.offset) });
  });

  it('a receiver detached with an error, or cut off with its connection, is reconnected by the SDK and loses nothing', async () => {
    const hub = nextHub();
    const client = producer(hub);
    const received = subscribe(consumer(hub), { startPosition: earliestEventPosition });
    for (const n of [1, 2, 3, 4]) await send(client, [n]);
    await until(() => received.events.length === 4, 'the first four events');

    expect(emulator.detachReceivers(hub)).toBe(2);
    for (const n of [5, 6, 7, 8]) await send(client, [n]);
    await until(() => received.events.length >= 8, 'the events sent after the detach');

    // Appended, not sent: a send already on its way into a cut connection waits out its timeout in the SDK.
    emulator.dropConnections();
    emulator.append(hub, [9], { partitionId: '0' });
    emulator.append(hub, [10], { partitionId: '1' });
    await until(() => received.events.length >= 10, 'the events appended after the connection drop');
    await new Promise((resolve) => setTimeout(resolve, 100)); // time for a duplicate to show, were one coming
    expect(bodiesOf(received).sort((a, b) => (a as number) - (b as number))).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(received.closed).toEqual([]);
  });

  it('gives a partition to the receiver with the higher owner level, and refuses one with a lower level', async () => {
    const hub = nextHub();
    const client = producer(hub);
    const low = subscribe(consumer(hub), { startPosition: earliestEventPosition, ownerLevel: 1 }, '0');
    await until(() => low.attached.has('0'), 'the first owner attached');
    const high = subscribe(consumer(hub), { startPosition: earliestEventPosition, ownerLevel: 2 }, '0');
    await until(() => low.closed.length > 0 && high.attached.has('0'), 'the partition taken over');
    // A single-partition subscription keeps trying to take the partition back, and is refused each time.
    expect(new Set(low.closed)).toEqual(new Set([CloseReason.OwnershipLost]));
    expect(low.errors.map((e) => (e as Error & { code?: string }).code)).toContain('ReceiverDisconnectedError');

    await send(client, ['after'], { partitionId: '0' });
    await until(() => high.events.length === 1, 'the event at the new owner');
    expect(low.events).toEqual([]);
    const lower = subscribe(consumer(hub), { startPosition: earliestEventPosition, ownerLevel: 0 }, '0');
    await until(() => lower.errors.length > 0, 'the lower owner refused');
    expect(lower.events).toEqual([]);
  });

  it('a bare AMQP receiver: link-credit bounds every transfer, a drain is answered, and a new event goes out once there is credit', async () => {
    const hub = nextHub();
    emulator.append(hub, ['a', 'b', 'c', 'd', 'e'], { partitionId: '0' });
    const connection = rhea.create_container().connect({ host: '127.0.0.1', port: emulator.port, reconnect: false });
    // The SDK's source: the partition of a consumer group, and a selector filter for where to start.
    const selector = rhea.types.wrap_described("amqp.annotation.x-opt-offset > '-1'", 0x468c00000004);
    const source = { address: `${hub}/ConsumerGroups/$Default/Partitions/0`, filter: { 'apache.org:selector-filter:string': selector } };
    const receiver: Receiver = connection.open_receiver({ source, credit_window: 0 });
    const seen: string[] = [];
    let drains = 0;
    receiver.on('message', (context) => seen.push(String(decodeBody(context.message?.body))));
    receiver.on('receiver_drained', () => drains++);
    await new Promise((resolve) => receiver.once('receiver_open', resolve));
    try {
      receiver.add_credit(2);
      await until(() => seen.length === 2, 'two transfers');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(seen).toEqual(['a', 'b']);

      receiver.add_credit(5);
      receiver.drain_credit();
      await until(() => drains === 1, 'the drain answered with three events sent and two credits left');
      expect(seen).toEqual(['a', 'b', 'c', 'd', 'e']);
      expect((receiver as unknown as { credit: number }).credit).toBe(0);

      emulator.append(hub, ['f'], { partitionId: '0' });
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(seen).toHaveLength(5);
      receiver.drain = false;
      receiver.add_credit(2);
      await until(() => seen.length === 6, 'the waiting event once credit came');

      // Credit left and nothing to send: the next event goes out as it is appended, with no flow to prompt it.
      await new Promise((resolve) => setTimeout(resolve, 50));
      emulator.append(hub, ['g'], { partitionId: '0' });
      await until(() => seen.length === 7, 'the appended event pushed');
      expect(seen.slice(5)).toEqual(['f', 'g']);
    } finally {
      connection.close();
    }
  });
});

/** An event body as a partition holds it: a data section of UTF-8 JSON, as the SDK and the test hook write it. */
function decodeBody(section: unknown): unknown {
  return JSON.parse(String((section as { content: Buffer }).content));
}
