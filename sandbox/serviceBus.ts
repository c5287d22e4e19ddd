import { randomUUID } from 'node:crypto';
import rhea, { type Delivery, type EventContext, type Message, type Receiver, type Sender } from 'rhea';
import { announceMaxMessageSize, attachOf, BATCH_FORMAT, CreditedLink, decode, listen, type Listener, outcomes, ReplyLinks, unbatch } from './amqp';

/**
 * A Service Bus broker for tests: AMQP 1.0 on `rhea`, close enough to Azure Service Bus that the real
 * `@azure/service-bus` client runs against it unchanged (facts in reference/servicebus.md). It keeps queues with
 * peek-lock delivery, delivery counts, lock renewal and expiry, dead-lettering (explicit and MaxDeliveryCountExceeded),
 * scheduled messages, duplicate detection on MessageId, and fault hooks a test turns on to prove the engine survives
 * a broker misbehaving the way a real one can. Not durable across restarts of the emulator itself: tests that kill
 * the engine keep the emulator running.
 *
 * Deliveries follow AMQP link flow control (AMQP 1.0 §2.6.7) as Service Bus does: a consumer link gets no more messages
 * than the link-credit its receiver granted, a drain is answered, and a lock that lapses puts the message back without
 * giving the receiver credit it did not grant.
 *
 * Connect with `connectionString` (plain TCP, `UseDevelopmentEmulator=true`, SASL ANONYMOUS plus a `$cbs` token
 * exchange that accepts any token).
 */

/** One message as the broker holds it. */
export interface BrokerMessage {
  sequenceNumber: number;
  messageId: string;
  /** The message as the client encoded it (properties, annotations, body), minus broker annotations. */
  message: Message;
  enqueuedAt: number;
  /** Deliveries so far (Service Bus counts every delivery; abandon and lock expiry put it back). */
  deliveryCount: number;
  lockToken?: string;
  lockedUntil?: number;
  /** The link that holds the lock: the settlement must come back on it. */
  heldBy?: Sender;
  deadLetterReason?: string;
  deadLetterDescription?: string;
}

export interface BrokerQueueOptions {
  /** Lock duration; Service Bus default 60 s. Tests shorten it so a lost lock comes back quickly. */
  lockDurationMs?: number;
  /** Service Bus default 10. */
  maxDeliveryCount?: number;
  /** Duplicate detection window keyed on MessageId (Service Bus default 10 minutes). 0 turns it off. */
  duplicateWindowMs?: number;
}

/** Faults a test can turn on. Counters count down as they fire. */
export interface BrokerFaults {
  /** The next N settlements (complete, abandon, dead-letter) fail with `MessageLockLost`; the lock is gone too. */
  failSettles: number;
  /** The next N deliveries are also put back on the queue as a second copy: an at-least-once duplicate. */
  duplicateDeliveries: number;
  /** The next N sends (and schedule requests) are refused with `amqp:internal-error`. */
  failSends: number;
  /** Delay before the broker answers a settlement: a slow broker. */
  settleDelayMs: number;
  /**
   * A client that goes away (link or connection closed, process killed) leaves its locks until they expire, as an
   * instance that vanished does: the broker hears no goodbye, and redelivers only when the lock duration has passed.
   */
  locksOutliveClients: boolean;
}

const DEAD_LETTER_SUFFIX = '/$deadletterqueue';
const LOCK_LOST = 'com.microsoft:message-lock-lost';
/** Service Bus Standard tier's largest message. */
const MAX_MESSAGE_BYTES = 256 * 1024;

class BrokerQueue {
  readonly ready: BrokerMessage[] = [];
  readonly locked = new Map<string, BrokerMessage>();
  readonly scheduled = new Map<number, { at: number; message: BrokerMessage }>();
  readonly seen = new Map<string, number>();
  /** The links consuming the queue, each keeping to the link-credit its receiver granted. */
  readonly consumers = new Map<Sender, CreditedLink>();

  constructor(
    readonly name: string,
    readonly options: Required<BrokerQueueOptions>,
  ) {}
}

export class ServiceBusEmulator {
  readonly faults: BrokerFaults = { failSettles: 0, duplicateDeliveries: 0, failSends: 0, settleDelayMs: 0, locksOutliveClients: false };
  /** Every message the broker accepted from a client, in order (sends and schedules): what tests count. */
  readonly accepted: Array<{ queue: string; messageId: string; scheduledFor?: number }> = [];
  private readonly queues = new Map<string, BrokerQueue>();
  private readonly replyLinks = new ReplyLinks();
  private readonly container = rhea.create_container({ id: 'servicebus-emulator' });
  private listener: Listener | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private sequence = 0;

  constructor(private readonly defaults: BrokerQueueOptions = {}) {
    this.container.on('sender_open', (context: EventContext) => this.onConsumerOpen(context.sender as Sender));
    this.container.on('sender_close', (context: EventContext) => this.forgetLinks((link) => link === context.sender));
    // Credit and drain come in flow frames (CreditedLink); 'sendable' also says rhea's outgoing window has room again.
    this.container.on('sendable', (context: EventContext) => this.pumpLink(context.sender as Sender));
    this.container.on('receiver_open', (context: EventContext) => announceMaxMessageSize(context.receiver as Receiver, MAX_MESSAGE_BYTES));
    this.container.on('message', (context: EventContext) => this.onMessage(context));
    // rhea also raises 'released' for every 'modified' (abandon): listening to both would settle twice.
    for (const outcome of ['accepted', 'rejected', 'modified'])
      this.container.on(outcome, (context: EventContext) => this.onSettle(context.sender as Sender, context.delivery as Delivery, outcome));
    // Peek-locks belong to the link that received them: when it goes, the messages come back (their delivery counted).
    this.container.on('disconnected', (context: EventContext) => this.forgetLinks((link) => link.connection === context.connection));
  }

  /**
   * Listen on 127.0.0.1 (port 0 picks one): plain TCP, as the SDK speaks to an emulator, or with `tls` (the test CA's
   * certificate) for the managed-identity shape, which always speaks TLS (reach it with `customEndpointAddress`).
   */
  async start(port = 0, tls?: { key: Buffer; cert: Buffer }): Promise<this> {
    this.listener = await listen(this.container, port, tls);
    this.ticker = setInterval(() => this.tick(), 10);
    this.ticker.unref();
    return this;
  }

  get port(): number {
    return (this.listener as Listener).port;
  }

  get connectionString(): string {
    return (this.listener as Listener).connectionString;
  }

  async stop(): Promise<void> {
    if (this.ticker) clearInterval(this.ticker);
    await this.listener?.close();
  }

  /**
   * Create a queue, empty, replacing one of that name with its dead-letter queue and duplicate-detection history
   * (tests start each case on a fresh queue). Sending to a queue nobody created creates it with the defaults.
   */
  createQueue(name: string, options: BrokerQueueOptions = {}): void {
    const merged = { lockDurationMs: 60_000, maxDeliveryCount: 10, duplicateWindowMs: 10 * 60_000, ...this.defaults, ...options };
    this.queues.set(name.toLowerCase(), new BrokerQueue(name, merged));
    this.queues.delete((name + DEAD_LETTER_SUFFIX).toLowerCase());
  }

  /** Counts for assertions: ready, locked (in flight), scheduled, dead-lettered. */
  stats(name: string): { ready: number; locked: number; scheduled: number; deadLettered: number } {
    const queue = this.queue(name);
    return {
      ready: queue.ready.length,
      locked: queue.locked.size,
      scheduled: queue.scheduled.size,
      deadLettered: this.queue(name + DEAD_LETTER_SUFFIX).ready.length,
    };
  }

  /** Messages waiting in the queue's dead-letter sub-queue. */
  deadLetters(name: string): BrokerMessage[] {
    return [...this.queue(name + DEAD_LETTER_SUFFIX).ready, ...this.queue(name + DEAD_LETTER_SUFFIX).locked.values()];
  }

  /** Fault: cut every client connection at the socket, as a network failure would. Locks stay until they expire. */
  dropConnections(): void {
    this.listener?.dropConnections();
  }

  /** Fault: every lock held now expires at once; the messages go back to the queue (their delivery counted). */
  expireLocks(): void {
    for (const queue of this.queues.values()) for (const message of queue.locked.values()) message.lockedUntil = 0;
    this.tick();
  }

  /** Deliver every scheduled message now, as if its time had come. */
  releaseScheduled(): void {
    for (const queue of this.queues.values()) for (const entry of queue.scheduled.values()) entry.at = 0;
    this.tick();
  }

  /** Nothing ready, locked or scheduled in `name`. */
  isDrained(name: string): boolean {
    const stats = this.stats(name);
    return stats.ready === 0 && stats.locked === 0 && stats.scheduled === 0;
  }

  private queue(name: string): BrokerQueue {
    const key = name.toLowerCase();
    if (!this.queues.has(key)) this.createQueue(name);
    return this.queues.get(key) as BrokerQueue;
  }

  // ---- links ----------------------------------------------------------------------------------------------------

  /** A client receiver attached: either a consumer of a queue, or the reply end of `$cbs` / `$management`. */
  private onConsumerOpen(sender: Sender): void {
    const address = String(attachOf(sender).source?.address ?? '');
    if (address === '$cbs' || address.toLowerCase().endsWith('/$management')) return this.replyLinks.add(sender);
    // Through pumpLink: a flow on a link that no longer consumes (closed, or its queue replaced) sends nothing.
    this.queue(address).consumers.set(sender, new CreditedLink(sender, () => this.pumpLink(sender)));
    this.pumpLink(sender);
  }

  /** Links that closed, or whose connection went: no more deliveries to them (a dead link keeps its credit), locks back. */
  private forgetLinks(gone: (link: Sender) => boolean): void {
    this.releaseLocksOf(gone);
    for (const queue of this.queues.values()) for (const sender of [...queue.consumers.keys()]) if (gone(sender)) queue.consumers.delete(sender);
    this.replyLinks.forget(gone);
  }

  private onMessage(context: EventContext): void {
    const receiver = context.receiver as Receiver;
    const delivery = context.delivery as Delivery;
    const message = context.message as Message;
    const address = String(attachOf(receiver).target?.address ?? '');
    if (address === '$cbs') return this.reply(message, 200, {});
    if (address.toLowerCase().endsWith('/$management')) return this.onManagement(address.slice(0, -'/$management'.length), message);
    if (this.faults.failSends > 0) {
      this.faults.failSends--;
      delivery.update(true, outcomes.rejected({ error: { condition: 'amqp:internal-error', description: 'emulator fault: send refused' } }).described());
      return;
    }
    // rhea hands over a non-zero message format undecoded: the SDK's batch envelope.
    const inner = delivery.format === BATCH_FORMAT ? unbatch(decode(message as unknown as Buffer)) : [message];
    for (const each of inner) this.enqueue(this.queue(address), each as Message);
    delivery.update(true, outcomes.accepted().described());
  }

  // ---- the queue's life ------------------------------------------------------------------------------------------

  /** Accept a message: duplicate detection first (a repeat is reported accepted and silently dropped). */
  private enqueue(queue: BrokerQueue, message: Message, scheduledFor?: number): number | undefined {
    const messageId = String(message.message_id ?? randomUUID());
    message.message_id = messageId;
    const now = Date.now();
    const last = queue.seen.get(messageId);
    if (queue.options.duplicateWindowMs > 0 && last !== undefined && now - last < queue.options.duplicateWindowMs) return undefined;
    queue.seen.set(messageId, now);
    this.accepted.push({ queue: queue.name, messageId, ...(scheduledFor !== undefined && { scheduledFor }) });
    const stored: BrokerMessage = { sequenceNumber: ++this.sequence, messageId, message, enqueuedAt: now, deliveryCount: 0 };
    if (scheduledFor !== undefined && scheduledFor > now) queue.scheduled.set(stored.sequenceNumber, { at: scheduledFor, message: stored });
    else this.makeReady(queue, stored);
    return stored.sequenceNumber;
  }

  private makeReady(queue: BrokerQueue, message: BrokerMessage): void {
    message.lockToken = undefined;
    message.lockedUntil = undefined;
    message.heldBy = undefined;
    queue.ready.push(message);
    for (const consumer of queue.consumers.values()) this.pump(queue, consumer);
  }

  /** A delivery came back (abandon, expiry, failed settle): again, or to the dead-letter queue once the count is spent. */
  private putBack(queue: BrokerQueue, message: BrokerMessage): void {
    if (message.lockToken) queue.locked.delete(message.lockToken);
    if (message.deliveryCount >= queue.options.maxDeliveryCount)
      return this.deadLetter(queue, message, 'MaxDeliveryCountExceeded', `delivered ${message.deliveryCount} times`);
    this.makeReady(queue, message);
  }

  private deadLetter(queue: BrokerQueue, message: BrokerMessage, reason: string, description: string): void {
    if (message.lockToken) queue.locked.delete(message.lockToken);
    message.deadLetterReason = reason;
    message.deadLetterDescription = description;
    message.deliveryCount = 0; // as Service Bus does: the count starts again in the dead-letter queue
    message.message.application_properties = { ...message.message.application_properties, DeadLetterReason: reason, DeadLetterErrorDescription: description };
    this.makeReady(this.queue(queue.name + DEAD_LETTER_SUFFIX), message);
  }

  private releaseLocksOf(held: (link: Sender) => boolean): void {
    if (this.faults.locksOutliveClients) return;
    for (const queue of this.queues.values())
      for (const message of [...queue.locked.values()]) if (message.heldBy && held(message.heldBy)) this.putBack(queue, message);
  }

  /** Pump the queue `sender` consumes, if it is a consumer link (not a `$cbs` / `$management` reply link). */
  private pumpLink(sender: Sender): void {
    for (const queue of this.queues.values()) {
      const link = queue.consumers.get(sender);
      if (link) return this.pump(queue, link);
    }
  }

  /**
   * Send ready messages while the receiver's credit lasts, each counting a delivery and, unless the receiver settles on
   * receipt, taking a lock; then answer a drain if it asked for one. A lapsed lock puts its message back, not a credit.
   */
  private pump(queue: BrokerQueue, link: CreditedLink): void {
    const { sender } = link;
    const presettled = attachOf(sender).snd_settle_mode === 1;
    while (link.canSend && queue.ready.length > 0) {
      const message = queue.ready.shift() as BrokerMessage;
      message.deliveryCount++;
      const lockToken = randomUUID();
      if (!presettled) {
        message.lockToken = lockToken;
        message.lockedUntil = Date.now() + queue.options.lockDurationMs;
        message.heldBy = sender;
        queue.locked.set(lockToken, message);
      }
      link.send(this.outgoing(message), lockTokenTag(lockToken));
      if (this.faults.duplicateDeliveries > 0) {
        this.faults.duplicateDeliveries--;
        queue.ready.push({ ...message, sequenceNumber: ++this.sequence, deliveryCount: 0, lockToken: undefined, lockedUntil: undefined, heldBy: undefined });
      }
    }
    link.answerDrain(queue.ready.length === 0);
  }

  /** The message as delivered: the broker's annotations and the delivery count added to what the client sent. */
  private outgoing(message: BrokerMessage): Message {
    return {
      ...message.message,
      delivery_count: message.deliveryCount - 1,
      message_annotations: {
        ...message.message.message_annotations,
        'x-opt-sequence-number': rhea.types.wrap_long(message.sequenceNumber),
        'x-opt-enqueued-time': new Date(message.enqueuedAt),
        ...(message.lockedUntil !== undefined && { 'x-opt-locked-until': new Date(message.lockedUntil) }),
      },
    };
  }

  private onSettle(sender: Sender, delivery: Delivery, outcome: string): void {
    if (this.replyLinks.has(sender)) return; // the client settling a $cbs / $management answer
    const answer = () => this.settle(sender, delivery, outcome);
    if (this.faults.settleDelayMs > 0) setTimeout(answer, this.faults.settleDelayMs);
    else answer();
  }

  private settle(sender: Sender, delivery: Delivery, outcome: string): void {
    const queue = [...this.queues.values()].find((q) => q.consumers.has(sender));
    const answer = (state: unknown) => {
      delivery.update(true, state);
      forget(delivery);
    };
    const token = tagToLockToken(delivery.tag as Buffer);
    const message = queue?.locked.get(token);
    if (!queue || !message || (message.lockedUntil ?? 0) < Date.now() || this.faults.failSettles > 0) {
      if (queue && message) {
        this.faults.failSettles = Math.max(0, this.faults.failSettles - 1);
        this.putBack(queue, message);
      }
      const description = 'The lock supplied is invalid. Either the lock expired, or the message has already been removed from the queue.';
      answer(outcomes.rejected({ error: { condition: LOCK_LOST, description } }).described());
      return;
    }
    const state = delivery.remote_state as { error?: { info?: Record<string, unknown> }; undeliverable_here?: boolean } | undefined;
    if (outcome === 'accepted') {
      queue.locked.delete(token);
      answer(outcomes.accepted().described());
    } else if (outcome === 'rejected') {
      const info = state?.error?.info ?? {};
      this.deadLetter(queue, message, String(info.DeadLetterReason ?? 'DeadLettered'), String(info.DeadLetterErrorDescription ?? ''));
      answer(outcomes.rejected({}).described());
    } else {
      this.putBack(queue, message);
      answer(outcomes.released().described());
    }
  }

  /** Scheduled messages whose time came, and locks that ran out. */
  private tick(): void {
    const now = Date.now();
    for (const queue of this.queues.values()) {
      for (const [sequenceNumber, entry] of queue.scheduled)
        if (entry.at <= now) {
          queue.scheduled.delete(sequenceNumber);
          entry.message.enqueuedAt = now;
          this.makeReady(queue, entry.message);
        }
      for (const message of [...queue.locked.values()]) if ((message.lockedUntil ?? 0) <= now) this.putBack(queue, message);
    }
  }

  // ---- $management -----------------------------------------------------------------------------------------------

  private onManagement(entity: string, request: Message): void {
    const queue = this.queue(entity);
    const body = (request.body ?? {}) as Record<string, unknown>;
    switch (request.application_properties?.operation) {
      case 'com.microsoft:renew-lock': {
        const expirations: Date[] = [];
        for (const raw of (body['lock-tokens'] as Buffer[]) ?? []) {
          const message = queue.locked.get(rhea.uuid_to_string(raw));
          if (!message || (message.lockedUntil ?? 0) < Date.now()) return this.reply(request, 410, {}, LOCK_LOST, 'lock lost');
          message.lockedUntil = Date.now() + queue.options.lockDurationMs;
          expirations.push(new Date(message.lockedUntil));
        }
        return this.reply(request, 200, { expirations });
      }
      case 'com.microsoft:schedule-message': {
        if (this.faults.failSends > 0) {
          this.faults.failSends--;
          return this.reply(request, 500, {}, 'amqp:internal-error', 'emulator fault: schedule refused');
        }
        const numbers: number[] = [];
        for (const entry of (body.messages as Array<{ message: Buffer }>) ?? []) {
          const message = decode(entry.message);
          const at = message.message_annotations?.['x-opt-scheduled-enqueue-time'];
          numbers.push(this.enqueue(queue, message, at === undefined ? Date.now() : new Date(at as Date).getTime()) ?? 0);
        }
        return this.reply(request, 200, { 'sequence-numbers': rhea.types.wrap_array(numbers, 0x81, undefined) });
      }
      case 'com.microsoft:cancel-scheduled-message': {
        for (const raw of (body['sequence-numbers'] as Array<number | Buffer>) ?? [])
          queue.scheduled.delete(Number(Buffer.isBuffer(raw) ? raw.readBigInt64BE() : raw));
        return this.reply(request, 200, {});
      }
      case 'com.microsoft:peek-message': {
        const from = Number(body['from-sequence-number'] ?? 0);
        const count = Number(body['message-count'] ?? 1);
        const all = [...queue.ready, ...queue.locked.values()].filter((m) => m.sequenceNumber >= from).sort((a, b) => a.sequenceNumber - b.sequenceNumber);
        const page = all.slice(0, count).map((m) => ({ message: rhea.message.encode(this.outgoing(m)) }));
        return page.length === 0 ? this.reply(request, 204, {}) : this.reply(request, 200, { messages: page });
      }
      default:
        return this.reply(request, 501, {}, 'amqp:not-implemented', `the emulator does not implement ${String(request.application_properties?.operation)}`);
    }
  }

  /** Answer a `$cbs` or `$management` request on the link its `reply_to` names. */
  private reply(request: Message, status: number, body: Record<string, unknown>, condition?: string, description = 'OK'): void {
    this.replyLinks.answer(
      request,
      {
        statusCode: status,
        'status-code': status,
        statusDescription: description,
        'status-description': description,
        ...(condition && { errorCondition: condition }),
      },
      body,
    );
  }
}

/**
 * The broker settled a delivery: it is done with it. A peek-lock receiver settles second (rcv-settle-mode second) and
 * says nothing more, so rhea would keep the delivery in its outgoing window for good and, once the window filled,
 * never send on the link again. Marking the receiver's side settled lets rhea drop it once the disposition is written.
 */
function forget(delivery: Delivery): void {
  (delivery as unknown as { remote_settled: boolean }).remote_settled = true;
}

/** The delivery tag is the lock token, which the SDK reads in .NET GUID byte order (the swap is its own inverse). */
export function lockTokenTag(lockToken: string): Buffer {
  return dotNetGuidOrder(Buffer.from(lockToken.replace(/-/g, ''), 'hex'));
}

function tagToLockToken(tag: Buffer): string {
  const hex = dotNetGuidOrder(tag).toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function dotNetGuidOrder(b: Buffer): Buffer {
  return Buffer.from([b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], ...b.subarray(8)] as number[]);
}
