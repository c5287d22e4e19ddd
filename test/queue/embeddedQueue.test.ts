import { describe, expect, it } from 'vitest';
import type { ActionCommand } from '../../shared/actions/command';
import { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { command as commandFixture } from '../fixtures/commands';

const command = (n: number, attempt = 0): ActionCommand =>
  commandFixture('revokeSessions', { type: 'user', id: '6e7b768e-07e2-4810-8459-485f84f8f204' }, { mode: 'audit', attempt }, n);

describe('the embedded queue keeps Service Bus delivery semantics', () => {
  it('delivers each message as JSON with its MessageId and delivery count', async () => {
    const queue = new EmbeddedQueue();
    const seen: Array<[unknown, number, string]> = [];
    queue.start(async (body, d) => void seen.push([body, d.deliveryCount, d.messageId]));
    await queue.send([command(1), command(2)]);
    await queue.idle();
    expect(seen).toEqual([
      [command(1), 1, command(1).idempotencyKey],
      [command(2), 1, command(2).idempotencyKey],
    ]);
  });

  it('redelivers at once when the handler throws, and dead-letters after maxDeliveryCount', async () => {
    const queue = new EmbeddedQueue({ maxDeliveryCount: 3 });
    const counts: number[] = [];
    queue.start(async (_b, d) => {
      counts.push(d.deliveryCount);
      throw new Error('boom');
    });
    await queue.send([command(1)]);
    await queue.idle();
    expect(counts).toEqual([1, 2, 3]);
    expect(queue.deadLetters).toEqual([expect.objectContaining({ reason: 'MaxDeliveryCountExceeded', description: 'boom', deliveryCount: 3 })]);
  });

  it('drops a duplicate MessageId within the window, silently, but not a retry copy with a derived id', async () => {
    let now = 0;
    const queue = new EmbeddedQueue({ duplicateWindowMs: 1000, now: () => now });
    const ids: string[] = [];
    queue.start(async (_b, d) => void ids.push(d.messageId));
    await queue.send([command(1)]);
    await queue.send([command(1)]);
    await queue.send([command(1, 1)]);
    now = 2000;
    await queue.send([command(1)]);
    await queue.idle();
    expect(ids).toEqual([command(1).idempotencyKey, `${command(1).idempotencyKey}:a1`, command(1).idempotencyKey]);
  });

  it.each([
    ['the constructor', { concurrency: 2 }, {}, 2],
    ['start, as for the Service Bus queue', { concurrency: 4 }, { concurrency: 3 }, 3],
  ])('runs no more handlers at once than %s says', async (_where, constructed, started, limit) => {
    const queue = new EmbeddedQueue(constructed);
    let running = 0;
    let most = 0;
    queue.start(async () => {
      most = Math.max(most, ++running);
      await new Promise((r) => setTimeout(r, 5));
      running--;
    }, started);
    await queue.send(Array.from({ length: 12 }, (_, i) => command(i)));
    await queue.idle();
    expect(most).toBe(limit);
  });

  it('holds scheduled messages until their time', async () => {
    const queue = new EmbeddedQueue();
    const seen: number[] = [];
    queue.start(async () => void seen.push(Date.now()));
    const start = Date.now();
    await queue.schedule(command(1), new Date(start + 80));
    expect(queue.stats().scheduled).toBe(1);
    await new Promise((r) => setTimeout(r, 150));
    await queue.idle();
    expect(seen).toHaveLength(1);
    expect(seen[0]! - start).toBeGreaterThanOrEqual(75);
  });
});
