import { ServiceBusClient, type ServiceBusReceivedMessage, type ServiceBusReceiver } from '@azure/service-bus';
import rhea, { type Receiver } from 'rhea';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ServiceBusEmulator } from '../../sandbox/serviceBus';

/**
 * AMQP link flow control in the emulator (AMQP 1.0 §2.6.7), driven by the real @azure/service-bus client: the broker
 * sends a receiver no more messages than the link-credit it granted, honours a drain, and a lock that lapses puts the
 * message back without touching the receiver's credit. A broker that ignored credit locked every ready message at once,
 * the locks ran out while the messages waited their turn to go out, and handlers then got them late: lost locks,
 * duplicate handling, messages dead-lettered that no handler had failed.
 * One that never forgot a settled delivery sent nothing more on a link after 2,048.
 */
let broker: ServiceBusEmulator;
let client: ServiceBusClient;
let queueNumber = 0;

beforeAll(async () => {
  broker = await new ServiceBusEmulator({ lockDurationMs: 1500, maxDeliveryCount: 10 }).start();
  client = new ServiceBusClient(broker.connectionString, { retryOptions: { maxRetries: 1, timeoutInMs: 4000, retryDelayInMs: 50 } });
});
afterAll(async () => {
  await client.close();
  await broker.stop();
});

function nextQueue(options: Parameters<ServiceBusEmulator['createQueue']>[1] = {}): string {
  const name = `flow${++queueNumber}`;
  broker.createQueue(name, options);
  return name;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

async function send(name: string, ids: string[]): Promise<void> {
  const sender = client.createSender(name);
  for (let i = 0; i < ids.length; i += 100) await sender.sendMessages(ids.slice(i, i + 100).map((messageId) => ({ messageId, body: { messageId } })));
  await sender.close();
}

/** The most messages the broker had locked at once, sampled every few milliseconds and whenever a handler starts. */
function watchLocked(name: string): { readonly max: number; sample(): void; stop(): void } {
  let max = 0;
  const sample = () => (max = Math.max(max, broker.stats(name).locked));
  const timer = setInterval(sample, 5);
  return {
    get max() {
      return max;
    },
    sample,
    stop: () => clearInterval(timer),
  };
}

/**
 * What the local host does (shared/queue/serviceBusQueue.ts `start`): subscribe, peek-lock, auto-complete, at most
 * `maxConcurrentCalls` handlers at once. The SDK grants that many credits and returns one as each handler finishes.
 */
function subscribe(
  name: string,
  maxConcurrentCalls: number,
  handle: (message: ServiceBusReceivedMessage) => Promise<void>,
  maxAutoLockRenewalDurationInMs = 5 * 60_000,
): { receiver: ServiceBusReceiver; errors: Array<{ source: string; code?: string }>; close(): Promise<void> } {
  const receiver = client.createReceiver(name, { receiveMode: 'peekLock', maxAutoLockRenewalDurationInMs });
  const errors: Array<{ source: string; code?: string }> = [];
  const subscription = receiver.subscribe(
    {
      processMessage: handle,
      processError: async ({ error, errorSource }) => {
        errors.push({ source: errorSource, code: (error as { code?: string }).code });
      },
    },
    { autoCompleteMessages: true, maxConcurrentCalls },
  );
  return {
    receiver,
    errors,
    close: async () => {
      await subscription.close();
      await receiver.close();
    },
  };
}

describe('Service Bus emulator flow control', () => {
  it('never locks more messages than the subscriber has credit for, and delivers each of 500 exactly once', { timeout: 90_000 }, async () => {
    const name = nextQueue();
    const ids = Array.from({ length: 500 }, (_, i) => `m${i}`);
    await send(name, ids);
    const concurrency = 4;
    const handled = new Map<string, number>();
    const locked = watchLocked(name);
    const consumer = subscribe(name, concurrency, async (message) => {
      locked.sample();
      handled.set(String(message.messageId), (handled.get(String(message.messageId)) ?? 0) + 1);
      await sleep(20);
    });
    try {
      await until(() => broker.isDrained(name), 75_000, 'all 500 messages to be completed');
    } finally {
      locked.stop();
      await consumer.close();
    }
    // The SDK returns a credit when a handler finishes, before its complete reaches the broker: for that round trip
    // a finished message is still locked while its successor is already delivered. Never more than twice the calls.
    expect(locked.max).toBeLessThanOrEqual(2 * concurrency);
    expect(locked.max).toBeGreaterThan(0);
    expect([...handled.keys()].sort()).toEqual([...ids].sort());
    expect([...handled.values()].every((count) => count === 1)).toBe(true);
    expect(consumer.errors).toEqual([]);
    expect(broker.stats(name)).toEqual({ ready: 0, locked: 0, scheduled: 0, deadLettered: 0 });
  });

  it(
    'puts a message whose lock lapsed back without costing the receiver credit: every message handled, and the receiver keeps receiving',
    { timeout: 90_000 },
    async () => {
      const name = nextQueue({ lockDurationMs: 600 });
      const ids = Array.from({ length: 200 }, (_, i) => `s${i}`);
      const slow = new Set(ids.filter((_, i) => i % 25 === 0));
      await send(name, ids);
      const concurrency = 4;
      const handled = new Map<string, number[]>();
      const locked = watchLocked(name);
      // No lock renewal: a handler slower than the lock loses it, as one stuck past maxAutoLockRenewalDuration does.
      const consumer = subscribe(
        name,
        concurrency,
        async (message) => {
          locked.sample();
          const id = String(message.messageId);
          handled.set(id, [...(handled.get(id) ?? []), message.deliveryCount ?? -1]);
          await sleep(slow.has(id) && message.deliveryCount === 0 ? 1200 : 10);
        },
        0,
      );
      try {
        await until(() => broker.isDrained(name), 75_000, 'every message to be completed');
        // The first delivery of each slow message lost its lock: its complete failed, and it came back (count 1).
        for (const id of slow) expect(handled.get(id)?.slice(0, 2)).toEqual([0, 1]);
        expect([...handled.keys()].sort()).toEqual([...ids].sort());
        expect(consumer.errors.filter((e) => e.source === 'complete').map((e) => e.code)).toContain('MessageLockLost');
        expect(broker.stats(name)).toEqual({ ready: 0, locked: 0, scheduled: 0, deadLettered: 0 });

        // Still receiving: the lapsed locks left the link's credit where the handlers put it.
        const later = Array.from({ length: 40 }, (_, i) => `later${i}`);
        await send(name, later);
        await until(() => later.every((id) => handled.has(id)) && broker.isDrained(name), 30_000, 'the later messages');
      } finally {
        locked.stop();
        await consumer.close();
      }
      expect(locked.max).toBeLessThanOrEqual(2 * concurrency);
    },
  );

  it('keeps delivering on one link past 2,048 deliveries: the broker forgets each delivery it has settled', { timeout: 150_000 }, async () => {
    // rhea, under the emulator, keeps a sender's deliveries in a window of 2,048 from the oldest not yet forgotten, and
    // a peek-lock receiver never tells the broker it may forget one: a broker that did not drop them itself filled the
    // window with settled deliveries and sent nothing on the link again.
    const name = nextQueue();
    const ids = Array.from({ length: 2200 }, (_, i) => `w${i}`);
    await send(name, ids);
    const concurrency = 16;
    const handled = new Map<string, number>();
    const locked = watchLocked(name);
    const consumer = subscribe(name, concurrency, async (message) => {
      locked.sample();
      handled.set(String(message.messageId), (handled.get(String(message.messageId)) ?? 0) + 1);
    });
    try {
      await until(() => broker.isDrained(name), 120_000, 'all 2,200 messages to be completed');
    } finally {
      locked.stop();
      await consumer.close();
    }
    expect(handled.size).toBe(ids.length);
    expect([...handled.values()].every((count) => count === 1)).toBe(true);
    expect(consumer.errors).toEqual([]);
    expect(locked.max).toBeLessThanOrEqual(2 * concurrency);
  });

  it('receiveMessages: no more than the messages asked for are locked, a drain ends the credit, the rest wait for the next call', async () => {
    const name = nextQueue();
    const ids = Array.from({ length: 30 }, (_, i) => `r${i}`);
    await send(name, ids);
    const receiver = client.createReceiver(name);
    const first = await receiver.receiveMessages(10, { maxWaitTimeInMs: 1000 });
    expect(first.map((m) => m.messageId)).toEqual(ids.slice(0, 10));
    await sleep(100);
    expect(broker.stats(name)).toMatchObject({ ready: 20, locked: 10 });

    // Fewer ready than asked for: the SDK drains the unused credit when its wait ends. What arrives afterwards waits.
    for (const m of first) await receiver.completeMessage(m);
    const second = await receiver.receiveMessages(25, { maxWaitTimeInMs: 300 });
    expect(second.map((m) => m.messageId)).toEqual(ids.slice(10));
    await send(name, ['late']);
    await sleep(200);
    expect(broker.stats(name)).toMatchObject({ ready: 1, locked: 20 });
    for (const m of second) await receiver.completeMessage(m);

    const third = await receiver.receiveMessages(5, { maxWaitTimeInMs: 1000 });
    expect(third.map((m) => m.messageId)).toEqual(['late']);
    await receiver.completeMessage(third[0] as ServiceBusReceivedMessage);
    expect(broker.isDrained(name)).toBe(true);
    await receiver.close();
  });

  it('a bare AMQP receiver: link-credit bounds every transfer, and a drain is answered whether the credit went on messages or not', async () => {
    const name = nextQueue();
    await send(
      name,
      Array.from({ length: 8 }, (_, i) => `a${i}`),
    );
    const connection = rhea.create_container().connect({ host: '127.0.0.1', port: broker.port, reconnect: false });
    const receiver: Receiver = connection.open_receiver({ source: name, credit_window: 0, autoaccept: false, rcv_settle_mode: 1 });
    const seen: string[] = [];
    let drains = 0;
    receiver.on('message', (context) => seen.push(String(context.message?.message_id)));
    receiver.on('receiver_drained', () => drains++);
    await new Promise((resolve) => receiver.once('receiver_open', resolve));
    // The receiver's flow state, as the broker's flow frames last set it (not in rhea's typings).
    const flowState = () => {
      const link = receiver as unknown as { credit: number; delivery_count: number };
      return { credit: link.credit, deliveryCount: link.delivery_count };
    };
    try {
      receiver.add_credit(3);
      await until(() => seen.length === 3, 5000, 'three transfers');
      await sleep(100);
      expect(seen).toEqual(['a0', 'a1', 'a2']);
      expect(broker.stats(name)).toMatchObject({ ready: 5, locked: 3 });

      // The credit goes on messages that are ready: the drain is answered all the same, with the credit at 0.
      receiver.add_credit(5);
      receiver.drain_credit();
      await until(() => drains === 1, 5000, 'the drain to be answered once the credit went on messages');
      expect(seen).toEqual(['a0', 'a1', 'a2', 'a3', 'a4', 'a5', 'a6', 'a7']);
      expect(flowState()).toEqual({ credit: 0, deliveryCount: 8 });

      // Nothing is ready: the delivery-count advances over the unused credit. A message sent later waits for credit.
      receiver.drain = false;
      receiver.add_credit(4);
      receiver.drain_credit();
      await until(() => drains === 2, 5000, 'the drain to be answered with nothing ready');
      expect(flowState()).toEqual({ credit: 0, deliveryCount: 12 });
      await send(name, ['late']);
      await sleep(200);
      expect(seen).toHaveLength(8);
      expect(broker.stats(name)).toMatchObject({ ready: 1, locked: 8 });
      receiver.drain = false;
      receiver.add_credit(1);
      await until(() => seen.length === 9, 5000, 'the late message once credit came');
      expect(seen.at(-1)).toBe('late');
    } finally {
      connection.close();
    }
  });
});
