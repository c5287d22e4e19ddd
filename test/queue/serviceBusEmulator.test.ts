import { ServiceBusClient, type ServiceBusReceivedMessage } from '@azure/service-bus';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ServiceBusEmulator } from '../../sandbox/serviceBus';

/**
 * The AMQP emulator, driven by the real @azure/service-bus client: the broker behaviours the engine's guarantees rest
 * on (peek-lock, delivery counts, dead-lettering, scheduling, duplicate detection, lock renewal and expiry) and the
 * faults the campaign injects.
 */
let broker: ServiceBusEmulator;
let client: ServiceBusClient;
let queueNumber = 0;
let queue: string;

beforeAll(async () => {
  broker = await new ServiceBusEmulator({ lockDurationMs: 1500, maxDeliveryCount: 3 }).start();
  client = new ServiceBusClient(broker.connectionString, { retryOptions: { maxRetries: 1, timeoutInMs: 4000, retryDelayInMs: 50 } });
});
afterAll(async () => {
  await client.close();
  await broker.stop();
});
afterEach(() => Object.assign(broker.faults, { failSettles: 0, duplicateDeliveries: 0, failSends: 0, settleDelayMs: 0, locksOutliveClients: false }));

function nextQueue(): string {
  queue = `q${++queueNumber}`;
  broker.createQueue(queue);
  return queue;
}

async function receiveAll(
  name: string,
  wait = 300,
): Promise<{ messages: ServiceBusReceivedMessage[]; receiver: ReturnType<ServiceBusClient['createReceiver']> }> {
  const receiver = client.createReceiver(name);
  return { messages: await receiver.receiveMessages(20, { maxWaitTimeInMs: wait }), receiver };
}

describe('Service Bus emulator with the real SDK', () => {
  it('delivers single and batched sends with their ids, bodies, sequence numbers and a first delivery count of 0', async () => {
    const name = nextQueue();
    const sender = client.createSender(name);
    await sender.sendMessages({ messageId: 'one', body: { n: 1 }, contentType: 'application/json' });
    await sender.sendMessages([
      { messageId: 'two', body: { n: 2 } },
      { messageId: 'three', body: 'text' },
    ]);
    const { messages, receiver } = await receiveAll(name);
    expect(messages.map((m) => [m.messageId, m.body, m.deliveryCount])).toEqual([
      ['one', { n: 1 }, 0],
      ['two', { n: 2 }, 0],
      ['three', 'text', 0],
    ]);
    expect(messages.map((m) => Number(m.sequenceNumber))).toEqual([...messages.map((m) => Number(m.sequenceNumber))].sort((a, b) => a - b));
    expect(messages[0]?.lockedUntilUtc?.getTime()).toBeGreaterThan(Date.now());
    for (const m of messages) await receiver.completeMessage(m);
    expect(broker.isDrained(name)).toBe(true);
    await receiver.close();
  });

  it('drops a repeated MessageId within the window, sent or scheduled, and reports it accepted', async () => {
    const name = nextQueue();
    const sender = client.createSender(name);
    await sender.sendMessages({ messageId: 'same', body: 1 });
    await sender.sendMessages({ messageId: 'same', body: 2 });
    await sender.scheduleMessages({ messageId: 'same', body: 3 }, new Date(Date.now() + 10));
    await sender.sendMessages({ messageId: 'same:a1', body: 4 });
    const { messages, receiver } = await receiveAll(name);
    expect(messages.map((m) => m.body)).toEqual([1, 4]);
    for (const m of messages) await receiver.completeMessage(m);
    await receiver.close();
  });

  it('redelivers an abandoned message with its count raised, and dead-letters it once the count is spent', async () => {
    const name = nextQueue();
    await client.createSender(name).sendMessages({ messageId: 'flaky', body: {} });
    const receiver = client.createReceiver(name);
    const counts: number[] = [];
    for (let i = 0; i < 3; i++) {
      const [m] = await receiver.receiveMessages(1, { maxWaitTimeInMs: 500 });
      counts.push((m as ServiceBusReceivedMessage).deliveryCount as number);
      await receiver.abandonMessage(m as ServiceBusReceivedMessage);
    }
    expect(counts).toEqual([0, 1, 2]);
    expect(broker.stats(name)).toMatchObject({ ready: 0, deadLettered: 1 });
    const dlq = client.createReceiver(name, { subQueueType: 'deadLetter' });
    const [dead] = await dlq.receiveMessages(1, { maxWaitTimeInMs: 500 });
    expect([dead?.messageId, dead?.deadLetterReason]).toEqual(['flaky', 'MaxDeliveryCountExceeded']);
    await dlq.completeMessage(dead as ServiceBusReceivedMessage);
    expect(broker.deadLetters(name)).toEqual([]);
    await Promise.all([receiver.close(), dlq.close()]);
  });

  it('dead-letters on request with the reason and description given', async () => {
    const name = nextQueue();
    await client.createSender(name).sendMessages({ messageId: 'bad', body: { nope: true } });
    const { messages, receiver } = await receiveAll(name);
    await receiver.deadLetterMessage(messages[0] as ServiceBusReceivedMessage, {
      deadLetterReason: 'SchemaInvalid',
      deadLetterErrorDescription: 'kind: required',
    });
    expect(broker.deadLetters(name).map((m) => [m.messageId, m.deadLetterReason, m.deadLetterDescription])).toEqual([
      ['bad', 'SchemaInvalid', 'kind: required'],
    ]);
    await receiver.close();
  });

  it('holds scheduled messages until their time, and cancels them by sequence number', async () => {
    const name = nextQueue();
    const sender = client.createSender(name);
    const [kept] = await sender.scheduleMessages({ messageId: 'later', body: 'later' }, new Date(Date.now() + 400));
    const [cancelled] = await sender.scheduleMessages({ messageId: 'never', body: 'never' }, new Date(Date.now() + 400));
    expect(Number(kept)).toBeGreaterThan(0);
    await sender.cancelScheduledMessages(cancelled as NonNullable<typeof cancelled>);
    expect(broker.stats(name)).toMatchObject({ ready: 0, scheduled: 1 });
    const early = await receiveAll(name, 100);
    expect(early.messages).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 450));
    const { messages, receiver } = await receiveAll(name);
    expect(messages.map((m) => m.body)).toEqual(['later']);
    await receiver.completeMessage(messages[0] as ServiceBusReceivedMessage);
    await Promise.all([early.receiver.close(), receiver.close()]);
  });

  it('renews a lock; an expired lock puts the message back and its late settlement fails with MessageLockLost', async () => {
    const name = nextQueue();
    await client.createSender(name).sendMessages({ messageId: 'slow', body: {} });
    const { messages, receiver } = await receiveAll(name);
    const message = messages[0] as ServiceBusReceivedMessage;
    const renewed = await receiver.renewMessageLock(message);
    expect(renewed.getTime()).toBeGreaterThan(Date.now() + 1000);
    broker.expireLocks();
    await expect(receiver.completeMessage(message)).rejects.toMatchObject({ code: 'MessageLockLost' });
    const again = await receiver.receiveMessages(1, { maxWaitTimeInMs: 500 });
    expect(again.map((m) => [m.messageId, m.deliveryCount])).toEqual([['slow', 1]]);
    await receiver.completeMessage(again[0] as ServiceBusReceivedMessage);
    await receiver.close();
  });

  it('fault hooks: a failed settle, a duplicated delivery, a refused send, a dropped connection the client recovers from', async () => {
    const name = nextQueue();
    const sender = client.createSender(name);
    // The SDK retries a refused send (here once): two refusals fail it, and nothing was enqueued.
    broker.faults.failSends = 2;
    await expect(client.createSender(name).sendMessages({ messageId: 'refused', body: {} })).rejects.toBeDefined();
    expect(broker.accepted.filter((m) => m.queue === name)).toEqual([]);
    await sender.sendMessages({ messageId: 'm', body: {} });

    broker.faults.duplicateDeliveries = 1;
    const { messages, receiver } = await receiveAll(name);
    expect(messages.map((m) => m.messageId)).toEqual(['m', 'm']);
    broker.faults.failSettles = 1;
    await expect(receiver.completeMessage(messages[0] as ServiceBusReceivedMessage)).rejects.toMatchObject({ code: 'MessageLockLost' });
    await receiver.completeMessage(messages[1] as ServiceBusReceivedMessage);

    broker.dropConnections();
    await sender.sendMessages({ messageId: 'after-drop', body: {} });
    const later = await receiver.receiveMessages(5, { maxWaitTimeInMs: 1000 });
    expect(later.map((m) => m.messageId).sort()).toEqual(['after-drop', 'm']);
    await receiver.close();
  });

  it('fault hook: a client that vanishes leaves its locks until they expire, then the message comes back', async () => {
    const name = nextQueue();
    await client.createSender(name).sendMessages({ messageId: 'held', body: {} });
    broker.faults.locksOutliveClients = true;
    const { messages, receiver } = await receiveAll(name);
    const lockedUntil = messages[0]?.lockedUntilUtc?.getTime() ?? 0;
    expect(messages.map((m) => m.messageId)).toEqual(['held']);
    await receiver.close();
    expect(broker.stats(name)).toMatchObject({ ready: 0, locked: 1 });
    const next = client.createReceiver(name);
    const again = await next.receiveMessages(1, { maxWaitTimeInMs: 4000 });
    expect(again.map((m) => [m.messageId, m.deliveryCount])).toEqual([['held', 1]]);
    expect(Date.now()).toBeGreaterThanOrEqual(lockedUntil); // once its lock ran out, not at once
    await next.completeMessage(again[0] as ServiceBusReceivedMessage);
    await next.close();
  });
});
