import type { ActionCommand } from '../actions/command';
import { isReevaluation, reevaluationMessageId, type IncidentReevaluation, type RiskReevaluation } from './reevaluation';
import { messageIdOf as actionMessageId } from '../actions/command';

/** What travels on the actions queue. */
export type QueueMessage = ActionCommand | IncidentReevaluation | RiskReevaluation;

/**
 * The action queue port: Azure Service Bus queue `actions` (ServiceBusActionQueue) wherever ServiceBusConnection is
 * set, else EmbeddedQueue, an in-memory twin with Service Bus's delivery semantics (local host, tests). Either way the
 * MessageId is `messageIdOf(message)`.
 */
export interface ActionQueue {
  /** Resolves only once every command is accepted by the queue; rejects if any is not. */
  send(commands: readonly ActionCommand[]): Promise<void>;
  /** Deliver `message` no earlier than `at` (retry copies, follow-ups, re-evaluations). */
  schedule(message: QueueMessage, at: Date): Promise<void>;
  /** Up to `max` messages from the queue's dead-letter sub-queue, each locked until settled (the reconciler's input). */
  receiveDeadLetters(max: number): Promise<DeadLetteredMessage[]>;
}

/** A message the broker dead-lettered (MaxDeliveryCountExceeded, TTLExpiredException, …). */
export interface DeadLetteredMessage {
  messageId: string;
  body: unknown;
  reason: string;
  description: string;
  /**
   * How many times it was delivered before it was dead-lettered, when the queue can tell. Service Bus cannot: a
   * dead-lettered message's count starts again in the dead-letter queue (azure-sdk-for-net#53437), and its
   * description says it instead ("could not be consumed after 10 delivery attempts").
   */
  deliveryCount?: number;
  /** Remove it from the dead-letter queue: only once the ledger holds its record. */
  settle(): Promise<void>;
}

/** What a queue-triggered handler learns about the delivery (the Service Bus trigger's metadata). */
export interface QueueDelivery {
  messageId: string;
  deliveryCount: number;
  enqueuedTimeUtc: string;
}

/** The queue-triggered function, as a queue that drives it itself (local host, tests) calls it: throw = abandon. */
export type DeliveryHandler = (body: unknown, delivery: QueueDelivery) => Promise<void>;

/**
 * Deliveries before Service Bus dead-letters a message (the queue's maxDeliveryCount, infra/modules/serviceBus.bicep):
 * the service's default, the embedded queue's, and the count the dead-letter descriptions above quote.
 */
export const MAX_DELIVERY_COUNT = 10;

/** The Service Bus MessageId of any queue message (duplicate detection keys on it). */
export function messageIdOf(message: QueueMessage): string {
  return isReevaluation(message) ? reevaluationMessageId(message) : actionMessageId(message);
}
