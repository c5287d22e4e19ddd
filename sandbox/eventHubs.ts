import { createHash } from 'node:crypto';
import rhea, { type Delivery, type EventContext, type Message, type Receiver, type Sender } from 'rhea';
import {
  announceMaxMessageSize,
  attachOf,
  BATCH_FORMAT,
  CreditedLink,
  decode,
  listen,
  type Listener,
  outcomes,
  type RemoteAttach,
  ReplyLinks,
  unbatch,
} from './amqp';

/**
 * An Event Hubs namespace for tests: AMQP 1.0 on `rhea`, close enough to Azure Event Hubs that the real
 * `@azure/event-hubs` client runs against it unchanged (producer sends and batches, consumer subscriptions from any
 * starting position, checkpoints through a checkpoint store, hub and partition properties). It keeps hubs of
 * partitions, each an append-only log with sequence numbers and byte offsets, read by consumer groups; owner levels
 * (epochs) take a partition from a lower owner as Event Hubs does; and fault hooks let a test detach receivers or cut
 * connections to prove a consumer resumes where it was. Not durable across restarts of the emulator itself, and
 * nothing expires: retention is for ever.
 *
 * Deliveries follow AMQP link flow control (AMQP 1.0 §2.6.7): a receiver gets no more events than the link-credit it
 * granted, and an event appended while a receiver waits is pushed to it at once.
 *
 * Connect with `connectionString` and the hub's name (plain TCP, `UseDevelopmentEmulator=true`, SASL ANONYMOUS plus a
 * `$cbs` token exchange that accepts any token).
 */

/** One event as a partition holds it. */
export interface HubEvent {
  partitionId: string;
  /** From 0 in each partition. */
  sequenceNumber: number;
  /** Where the event starts in the partition's log, in bytes: what `x-opt-offset` carries, as a string. */
  offset: number;
  enqueuedAt: number;
  partitionKey?: string;
  /** The event as its producer encoded it (properties, annotations, body), minus the broker's annotations. */
  message: Message;
}

export interface EventHubOptions {
  /** Event Hubs' default for a new hub is 4; tests want fewer. */
  partitionCount?: number;
  /** Consumer groups besides `$Default`, which every hub has. */
  consumerGroups?: string[];
}

/** Where an event appended by a test goes: a partition, a partition key hashed to one, or else round-robin. */
export interface AppendTarget {
  partitionId?: string;
  partitionKey?: string;
}

const DEFAULT_CONSUMER_GROUP = '$default';
/** Event Hubs Standard tier's largest event. */
const MAX_MESSAGE_BYTES = 1024 * 1024;
const SELECTOR_FILTER = 'apache.org:selector-filter:string';
const OWNER_LEVEL = 'com.microsoft:epoch';
const RUNTIME_METRIC = 'com.microsoft:enable-receiver-runtime-metric';
/** A receiver that lost its partition to a higher owner level (the SDK's ReceiverDisconnectedError). */
const LINK_STOLEN = 'amqp:link:stolen';

class Partition {
  readonly events: HubEvent[] = [];
  readonly consumers = new Set<Consumer>();
  nextOffset = 0;

  constructor(readonly id: string) {}

  get last(): HubEvent | undefined {
    return this.events.at(-1);
  }
}

class Hub {
  readonly createdAt = new Date();
  readonly partitions: Partition[];
  /** Where the next send without a partition id or key goes. */
  roundRobin = 0;

  constructor(
    readonly name: string,
    partitionCount: number,
    readonly consumerGroups: Set<string>,
  ) {
    this.partitions = Array.from({ length: partitionCount }, (_, i) => new Partition(String(i)));
  }

  partition(id: string): Partition | undefined {
    return this.partitions.find((p) => p.id === id);
  }
}

/** A receiver reading one partition for one consumer group. */
interface Consumer {
  readonly link: CreditedLink;
  readonly partition: Partition;
  readonly consumerGroup: string;
  readonly ownerLevel?: number;
  /** The receiver asked for the partition's last enqueued event with each delivery (`lastEnqueuedEventProperties`). */
  readonly runtimeMetric: boolean;
  /** Index in the partition's log of the next event to deliver. */
  next: number;
}

export class EventHubsEmulator {
  private readonly hubs = new Map<string, Hub>();
  private readonly consumers = new Map<Sender, Consumer>();
  private readonly replyLinks = new ReplyLinks();
  private readonly container = rhea.create_container({ id: 'eventhubs-emulator' });
  private listener: Listener | undefined;

  constructor() {
    this.container.on('sender_open', (context: EventContext) => this.onReceiverAttach(context.sender as Sender));
    this.container.on('sender_close', (context: EventContext) => this.forgetLinks((link) => link === context.sender));
    // Credit comes in flow frames (CreditedLink); 'sendable' also says rhea's outgoing window has room again.
    this.container.on('sendable', (context: EventContext) => this.pumpLink(context.sender as Sender));
    this.container.on('receiver_open', (context: EventContext) => this.onProducerAttach(context.receiver as Receiver));
    this.container.on('message', (context: EventContext) => this.onMessage(context));
    this.container.on('disconnected', (context: EventContext) => this.forgetLinks((link) => link.connection === context.connection));
  }

  /** Listen on 127.0.0.1 (port 0 picks one), plain TCP, as the SDK speaks to an emulator. */
  async start(port = 0): Promise<this> {
    this.listener = await listen(this.container, port);
    return this;
  }

  get port(): number {
    return (this.listener as Listener).port;
  }

  /** The namespace's connection string: give the SDK the hub's name beside it (or append `;EntityPath=<hub>`). */
  get connectionString(): string {
    return (this.listener as Listener).connectionString;
  }

  async stop(): Promise<void> {
    await this.listener?.close();
  }

  /** Create a hub, empty, replacing one of that name (tests start each case on a fresh hub). */
  createHub(name: string, options: EventHubOptions = {}): void {
    const groups = new Set([DEFAULT_CONSUMER_GROUP, ...(options.consumerGroups ?? []).map((g) => g.toLowerCase())]);
    this.hubs.set(name.toLowerCase(), new Hub(name, options.partitionCount ?? 2, groups));
  }

  /**
   * Append events as a producer outside the SDK does (a diagnostic setting writes each batch of records as one JSON
   * body): a Buffer body goes as it is, anything else as UTF-8 JSON, each in a data section. Open receivers get them at
   * once. The events go to one partition, as one send does.
   */
  append(hubName: string, bodies: unknown[], target: AppendTarget = {}): HubEvent[] {
    const hub = this.hubOrThrow(hubName);
    const partition = target.partitionId === undefined ? this.choosePartition(hub, target.partitionKey) : hub.partition(target.partitionId);
    if (!partition) throw new Error(`hub ${hubName} has no partition ${String(target.partitionId)}`);
    const messages = bodies.map((body) => ({
      body: rhea.message.data_section(Buffer.isBuffer(body) ? body : Buffer.from(JSON.stringify(body))),
      ...(target.partitionKey !== undefined && { message_annotations: { 'x-opt-partition-key': target.partitionKey } }),
    }));
    return this.enqueue(partition, messages as Message[]);
  }

  /** What a partition holds, oldest first. */
  eventsIn(hubName: string, partitionId: string): HubEvent[] {
    return [...(this.hubOrThrow(hubName).partition(partitionId)?.events ?? [])];
  }

  /**
   * Fault: detach every receiver of the hub with an error, as Event Hubs does when it moves a partition. The default
   * condition is one the SDK retries: it attaches again after the last event it received.
   */
  detachReceivers(hubName: string, condition = 'amqp:link:detach-forced'): number {
    const hub = this.hubOrThrow(hubName);
    const detached = [...this.consumers.values()].filter((c) => hub.partitions.includes(c.partition));
    for (const consumer of detached) this.detach(consumer, condition, 'emulator fault: receiver detached');
    return detached.length;
  }

  /** Fault: cut every client connection at the socket, as a network failure would. */
  dropConnections(): void {
    this.listener?.dropConnections();
  }

  private hubOrThrow(name: string): Hub {
    const hub = this.hubs.get(name.toLowerCase());
    if (!hub) throw new Error(`no event hub ${name}: create it with createHub`);
    return hub;
  }

  // ---- links ----------------------------------------------------------------------------------------------------

  /**
   * A client sender attached: `<hub>` (the service picks the partition) or `<hub>/Partitions/<id>`, or the request end
   * of `$cbs` / `$management`.
   */
  private onProducerAttach(receiver: Receiver): void {
    announceMaxMessageSize(receiver, MAX_MESSAGE_BYTES);
    const address = String(attachOf(receiver).target?.address ?? '');
    if (address === '$cbs' || address === '$management') return;
    const refusal = this.producerTarget(address).refusal;
    if (refusal) receiver.close(refusal);
  }

  /**
   * A client receiver attached: a consumer of `<hub>/ConsumerGroups/<group>/Partitions/<id>`, reading from where its
   * selector filter says, or the reply end of `$cbs` / `$management`.
   */
  private onReceiverAttach(sender: Sender): void {
    const attach = attachOf(sender);
    const address = String(attach.source?.address ?? '');
    if (address === '$cbs' || address === '$management') return this.replyLinks.add(sender);
    const match = /^([^/]+)\/ConsumerGroups\/([^/]+)\/Partitions\/([^/]+)$/i.exec(address);
    const hub = match && this.hubs.get((match[1] as string).toLowerCase());
    const consumerGroup = (match?.[2] ?? '').toLowerCase();
    if (!hub || !hub.consumerGroups.has(consumerGroup))
      return sender.close({ condition: 'amqp:not-found', description: `The messaging entity '${address}' could not be found.` });
    const partition = hub.partition(match[3] as string);
    if (!partition) return sender.close(partitionOutOfRange(hub));
    const start = startingIndex(partition, selectorOf(attach));
    if (start === undefined)
      return sender.close({ condition: 'com.microsoft:argument-error', description: `unsupported selector filter: ${String(selectorOf(attach))}` });
    const ownerLevel = attach.properties?.[OWNER_LEVEL] as number | undefined;
    const displaced = [...partition.consumers].filter((c) => c.consumerGroup === consumerGroup);
    const higher = displaced.find((c) => c.ownerLevel !== undefined && (ownerLevel === undefined || c.ownerLevel > ownerLevel));
    if (higher) return sender.close(ownerLevelRefusal(higher.ownerLevel as number, ownerLevel));
    // An owner level takes the partition from every receiver of the group at the same or a lower level, or with none.
    if (ownerLevel !== undefined) for (const rival of displaced) this.detach(rival, LINK_STOLEN, ownerLevelTakeover(ownerLevel, rival.ownerLevel));
    const consumer: Consumer = {
      link: new CreditedLink(sender, () => this.pump(consumer)),
      partition,
      consumerGroup,
      ...(ownerLevel !== undefined && { ownerLevel }),
      runtimeMetric: [attach.desired_capabilities ?? []].flat().includes(RUNTIME_METRIC),
      next: start,
    };
    partition.consumers.add(consumer);
    this.consumers.set(sender, consumer);
    this.pump(consumer);
  }

  private detach(consumer: Consumer, condition: string, description: string): void {
    this.forgetLinks((link) => link === consumer.link.sender);
    consumer.link.sender.close({ condition, description });
  }

  /** Links that closed, or whose connection went: no more deliveries to them. */
  private forgetLinks(gone: (link: Sender) => boolean): void {
    for (const [sender, consumer] of this.consumers)
      if (gone(sender)) {
        this.consumers.delete(sender);
        consumer.partition.consumers.delete(consumer);
      }
    this.replyLinks.forget(gone);
  }

  private pumpLink(sender: Sender): void {
    const consumer = this.consumers.get(sender);
    if (consumer) this.pump(consumer);
  }

  /** Send the partition's next events while the receiver's credit lasts; then answer a drain if it asked for one. */
  private pump(consumer: Consumer): void {
    const { link, partition } = consumer;
    while (link.canSend && consumer.next < partition.events.length) link.send(this.outgoing(partition.events[consumer.next++] as HubEvent, consumer));
    link.answerDrain(consumer.next >= partition.events.length);
  }

  /** The event as delivered: the broker's annotations added to what the producer sent (offset a string, as in SDK 6). */
  private outgoing(event: HubEvent, consumer: Consumer): Message {
    const last = consumer.partition.last as HubEvent;
    return {
      ...event.message,
      message_annotations: {
        ...event.message.message_annotations,
        'x-opt-sequence-number': rhea.types.wrap_long(event.sequenceNumber),
        'x-opt-offset': String(event.offset),
        'x-opt-enqueued-time': new Date(event.enqueuedAt),
        ...(event.partitionKey !== undefined && { 'x-opt-partition-key': event.partitionKey }),
      },
      ...(consumer.runtimeMetric && {
        delivery_annotations: {
          last_enqueued_sequence_number: rhea.types.wrap_long(last.sequenceNumber),
          last_enqueued_offset: String(last.offset),
          last_enqueued_time_utc: new Date(last.enqueuedAt),
          runtime_info_retrieval_time_utc: new Date(),
        },
      }),
    };
  }

  // ---- sends -----------------------------------------------------------------------------------------------------

  private onMessage(context: EventContext): void {
    const receiver = context.receiver as Receiver;
    const delivery = context.delivery as Delivery;
    const message = context.message as Message;
    const address = String(attachOf(receiver).target?.address ?? '');
    if (address === '$cbs') return this.reply(message, 200, {});
    if (address === '$management') return this.onManagement(message);
    // rhea hands over a non-zero message format undecoded: the SDK's batch envelope.
    const envelope = delivery.format === BATCH_FORMAT ? decode(message as unknown as Buffer) : message;
    const events = delivery.format === BATCH_FORMAT ? unbatch(envelope) : [message];
    const partitionKey = envelope.message_annotations?.['x-opt-partition-key'] as string | undefined;
    const { hub, partition } = this.producerTarget(address);
    const target = partition ?? (hub && this.choosePartition(hub, partitionKey));
    if (!target) {
      delivery.update(true, outcomes.rejected({ error: { condition: 'amqp:not-found', description: `no event hub at ${address}` } }).described());
      return;
    }
    this.enqueue(target, events);
    delivery.update(true, outcomes.accepted().described());
  }

  /** The hub (and partition, if named) a producer link sends to, or why the link is refused. */
  private producerTarget(address: string): { hub?: Hub; partition?: Partition; refusal?: { condition: string; description: string } } {
    const [hubName = '', partitionsSegment, partitionId] = address.split('/');
    const hub = this.hubs.get(hubName.toLowerCase());
    if (!hub || (partitionsSegment !== undefined && partitionsSegment.toLowerCase() !== 'partitions'))
      return { refusal: { condition: 'amqp:not-found', description: `The messaging entity '${address}' could not be found.` } };
    if (partitionId === undefined) return { hub };
    const partition = hub.partition(partitionId);
    return partition ? { hub, partition } : { hub, refusal: partitionOutOfRange(hub) };
  }

  /** A send without a partition id: a partition key always maps to the same partition; otherwise round-robin. */
  private choosePartition(hub: Hub, partitionKey: string | undefined): Partition {
    const index = partitionKey === undefined ? hub.roundRobin++ % hub.partitions.length : hashToPartition(partitionKey, hub.partitions.length);
    return hub.partitions[index] as Partition;
  }

  /** Append one send's events to the partition's log, then push them to the receivers waiting on it. */
  private enqueue(partition: Partition, messages: Message[]): HubEvent[] {
    const enqueuedAt = Date.now();
    const appended = messages.map((message) => {
      const partitionKey = message.message_annotations?.['x-opt-partition-key'] as string | undefined;
      const event: HubEvent = {
        partitionId: partition.id,
        sequenceNumber: partition.events.length,
        offset: partition.nextOffset,
        enqueuedAt,
        ...(partitionKey !== undefined && { partitionKey }),
        message,
      };
      partition.nextOffset += rhea.message.encode(message).length;
      partition.events.push(event);
      return event;
    });
    for (const consumer of partition.consumers) this.pump(consumer);
    return appended;
  }

  // ---- $management -----------------------------------------------------------------------------------------------

  /** The SDK's only management operation: READ of a hub (`com.microsoft:eventhub`) or a partition. */
  private onManagement(request: Message): void {
    const properties = request.application_properties ?? {};
    const hub = this.hubs.get(String(properties.name).toLowerCase());
    if (properties.operation !== 'READ') return this.reply(request, 501, {}, 'amqp:not-implemented', `unsupported operation ${String(properties.operation)}`);
    if (!hub) return this.reply(request, 404, {}, 'amqp:not-found', `The messaging entity '${String(properties.name)}' could not be found.`);
    if (properties.type === 'com.microsoft:eventhub')
      return this.reply(request, 200, {
        name: hub.name,
        created_at: hub.createdAt,
        partition_count: hub.partitions.length,
        partition_ids: hub.partitions.map((p) => p.id),
      });
    const partition = hub.partition(String(properties.partition));
    if (properties.type !== 'com.microsoft:partition' || !partition) {
      const refusal = partitionOutOfRange(hub);
      return this.reply(request, 400, {}, refusal.condition, refusal.description);
    }
    const last = partition.last;
    return this.reply(request, 200, {
      name: hub.name,
      partition: partition.id,
      begin_sequence_number: rhea.types.wrap_long(0),
      last_enqueued_sequence_number: rhea.types.wrap_long(last?.sequenceNumber ?? -1),
      last_enqueued_offset: String(last?.offset ?? -1),
      last_enqueued_time_utc: new Date(last?.enqueuedAt ?? 0),
      is_partition_empty: last === undefined,
    });
  }

  /** Answer a `$cbs` or `$management` request on the link its `reply_to` names. */
  private reply(request: Message, status: number, body: Record<string, unknown>, condition?: string, description = 'OK'): void {
    this.replyLinks.answer(request, { 'status-code': status, 'status-description': description, ...(condition && { 'error-condition': condition }) }, body);
  }
}

/** The selector the SDK puts on a receiver's source, e.g. `amqp.annotation.x-opt-offset > '-1'` (a described string). */
function selectorOf(attach: RemoteAttach): unknown {
  return (attach.source?.filter?.[SELECTOR_FILTER] as { value?: unknown } | undefined)?.value;
}

/**
 * Where in the log a receiver starts, from the SDK's selector: an offset (`-1` is the earliest, `@latest` the next event
 * to come), a sequence number, or an enqueued time in epoch milliseconds; `>` starts after it, `>=` at it. Undefined for
 * a selector the emulator does not know.
 */
function startingIndex(partition: Partition, selector: unknown): number | undefined {
  const match = /^amqp\.annotation\.x-opt-(offset|sequence-number|enqueued-time) (>=?) '([^']*)'$/.exec(String(selector));
  if (!match) return undefined;
  const [, field, operator, value] = match as unknown as [string, string, string, string];
  if (value === '@latest') return partition.events.length;
  const bound = Number(value);
  if (Number.isNaN(bound)) return undefined;
  const position = (e: HubEvent) => (field === 'offset' ? e.offset : field === 'sequence-number' ? e.sequenceNumber : e.enqueuedAt);
  const index = partition.events.findIndex((e) => (operator === '>=' ? position(e) >= bound : position(e) > bound));
  return index === -1 ? partition.events.length : index;
}

/** Not the service's hash: stable, which is what a test of partition-key affinity needs. */
function hashToPartition(partitionKey: string, partitionCount: number): number {
  return createHash('sha256').update(partitionKey).digest().readUInt32BE(0) % partitionCount;
}

function partitionOutOfRange(hub: Hub): { condition: string; description: string } {
  const description = `The specified partition is invalid for an EventHub partition sender or receiver. It should be between 0 and ${hub.partitions.length - 1}.`;
  return { condition: 'com.microsoft:argument-out-of-range', description };
}

function ownerLevelRefusal(existing: number, requested: number | undefined): { condition: string; description: string } {
  const description =
    requested === undefined
      ? `At least one receiver for the endpoint is created with epoch of '${existing}', and so non-epoch receiver is not allowed.`
      : `Receiver with a higher epoch '${existing}' already exists. A new receiver with epoch '${requested}' cannot be created.`;
  return { condition: LINK_STOLEN, description };
}

function ownerLevelTakeover(ownerLevel: number, previous: number | undefined): string {
  return `New receiver with higher epoch of '${ownerLevel}' is created hence current receiver with epoch '${previous ?? 'none'}' is getting disconnected.`;
}
