import type { ActionCommand } from '../actions/command';
import { MAX_DELIVERY_COUNT, messageIdOf, type ActionQueue, type DeadLetteredMessage, type DeliveryHandler, type QueueMessage } from './queue';

export interface DeadLetter {
  messageId: string;
  body: unknown;
  reason: string;
  description: string;
  deliveryCount: number;
}

interface Message {
  messageId: string;
  text: string;
  deliveryCount: number;
  enqueuedTimeUtc: string;
}

export interface EmbeddedQueueOptions {
  /** Service Bus default: 10. Every throw from the handler counts, as every abandon does on the broker. */
  maxDeliveryCount?: number;
  /** Duplicate detection window (Service Bus default 10 minutes): a repeated MessageId is accepted and dropped. */
  duplicateWindowMs?: number;
  /** Handlers running at once (host.json maxConcurrentCalls). */
  concurrency?: number;
  /** Cap on how long a scheduled message waits: the local host compresses time against the sandbox tenant. */
  maxScheduleDelayMs?: number;
  now?: () => number;
}

/**
 * An in-process queue with Service Bus's delivery semantics, so the local host and tests exercise the same
 * behaviour the Functions trigger has in Azure: at-least-once delivery, a handler that throws gets the message again
 * at once (no backoff), after `maxDeliveryCount` deliveries it is dead-lettered, duplicate MessageIds within the
 * window are silently dropped, and scheduled messages wait for their time. Bodies cross it as JSON text, as on the
 * wire. It is not durable: that is what Service Bus is for.
 */
export class EmbeddedQueue implements ActionQueue {
  readonly deadLetters: DeadLetter[] = [];
  private readonly ready: Message[] = [];
  private readonly seen = new Map<string, number>();
  private readonly timers = new Map<NodeJS.Timeout, () => void>();
  private readonly idleWaiters: Array<() => void> = [];
  private handler: DeliveryHandler | undefined;
  private inFlight = 0;
  private scheduled = 0;
  private readonly maxDeliveryCount: number;
  private readonly duplicateWindowMs: number;
  private concurrency: number;
  private readonly maxScheduleDelayMs: number;
  private readonly now: () => number;

  constructor(options: EmbeddedQueueOptions = {}) {
    this.maxDeliveryCount = options.maxDeliveryCount ?? MAX_DELIVERY_COUNT;
    this.duplicateWindowMs = options.duplicateWindowMs ?? 10 * 60_000;
    this.concurrency = options.concurrency ?? 4;
    this.maxScheduleDelayMs = options.maxScheduleDelayMs ?? Number.POSITIVE_INFINITY;
    this.now = options.now ?? Date.now;
  }

  async send(commands: readonly ActionCommand[]): Promise<void> {
    for (const command of commands) this.accept(messageIdOf(command), JSON.stringify(command));
    this.pump();
  }

  async schedule(message: QueueMessage, at: Date): Promise<void> {
    const messageId = messageIdOf(message);
    if (this.isDuplicate(messageId)) return;
    const text = JSON.stringify(message);
    this.scheduled++;
    const release = () => {
      clearTimeout(timer);
      this.timers.delete(timer);
      this.scheduled--;
      this.ready.push({ messageId, text, deliveryCount: 0, enqueuedTimeUtc: new Date(this.now()).toISOString() });
      this.pump();
    };
    const timer = setTimeout(release, Math.min(this.maxScheduleDelayMs, Math.max(0, at.getTime() - this.now())));
    timer.unref();
    this.timers.set(timer, release);
  }

  async receiveDeadLetters(max: number): Promise<DeadLetteredMessage[]> {
    return this.deadLetters.slice(0, max).map((letter) => ({
      ...letter,
      settle: async () => {
        const index = this.deadLetters.indexOf(letter);
        if (index >= 0) this.deadLetters.splice(index, 1);
      },
    }));
  }

  /** Start delivering to `handler` (the queue-triggered function), at most `concurrency` at once (else the constructor's). */
  start(handler: DeliveryHandler, options: { concurrency?: number } = {}): void {
    if (options.concurrency !== undefined) this.concurrency = options.concurrency;
    this.handler = handler;
    this.pump();
  }

  stop(): void {
    this.handler = undefined;
    for (const timer of this.timers.keys()) clearTimeout(timer);
    this.timers.clear();
  }

  /** Deliver every scheduled message now, as if its time had come (tests, and a local host that will not wait). */
  releaseScheduled(): void {
    for (const release of [...this.timers.values()]) release();
  }

  /** Resolves when nothing is ready or in flight (scheduled messages may still be waiting). */
  idle(): Promise<void> {
    if (this.ready.length === 0 && this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stats(): { ready: number; inFlight: number; scheduled: number; deadLettered: number } {
    return { ready: this.ready.length, inFlight: this.inFlight, scheduled: this.scheduled, deadLettered: this.deadLetters.length };
  }

  private accept(messageId: string, text: string): void {
    if (this.isDuplicate(messageId)) return;
    this.ready.push({ messageId, text, deliveryCount: 0, enqueuedTimeUtc: new Date(this.now()).toISOString() });
  }

  private isDuplicate(messageId: string): boolean {
    const now = this.now();
    const last = this.seen.get(messageId);
    if (last !== undefined && now - last < this.duplicateWindowMs) return true;
    this.seen.set(messageId, now);
    return false;
  }

  private pump(): void {
    while (this.handler && this.inFlight < this.concurrency && this.ready.length > 0) {
      const message = this.ready.shift() as Message;
      void this.deliver(this.handler, message);
    }
    if (this.ready.length === 0 && this.inFlight === 0) for (const resolve of this.idleWaiters.splice(0)) resolve();
  }

  private async deliver(handler: DeliveryHandler, message: Message): Promise<void> {
    this.inFlight++;
    message.deliveryCount++;
    try {
      await handler(JSON.parse(message.text), { messageId: message.messageId, deliveryCount: message.deliveryCount, enqueuedTimeUtc: message.enqueuedTimeUtc });
    } catch (error) {
      if (message.deliveryCount >= this.maxDeliveryCount) {
        this.deadLetters.push({
          messageId: message.messageId,
          body: JSON.parse(message.text),
          reason: 'MaxDeliveryCountExceeded',
          description: (error as Error).message,
          deliveryCount: message.deliveryCount,
        });
      } else {
        this.ready.unshift(message); // abandon: redelivered at once
      }
    } finally {
      this.inFlight--;
      this.pump();
    }
  }
}
