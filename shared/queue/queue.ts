import type { ActionCommand } from '../actions/command';

/**
 * The action queue port. Production: Azure Service Bus queue `actions`. Local host and tests: EmbeddedQueue, which
 * keeps Service Bus's delivery semantics. Either way the MessageId is `messageIdOf(command)`.
 */
export interface ActionQueue {
  /** Resolves only once every command is accepted by the queue; rejects if any is not. */
  send(commands: readonly ActionCommand[]): Promise<void>;
  /** Deliver `command` no earlier than `at` (retry copies, follow-ups). */
  schedule(command: ActionCommand, at: Date): Promise<void>;
}

/** What a queue-triggered handler learns about the delivery (the Service Bus trigger's metadata). */
export interface QueueDelivery {
  messageId: string;
  deliveryCount: number;
  enqueuedTimeUtc: string;
}
