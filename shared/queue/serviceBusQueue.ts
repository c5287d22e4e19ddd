// @azure/service-bus is slow to load: the composition imports this module only when Service Bus is configured.
import { RetryMode, ServiceBusClient, type ServiceBusMessage, type ServiceBusReceiver, type ServiceBusSender } from '@azure/service-bus';
import type { TokenCredential } from '@azure/identity';
import type { ActionCommand } from '../actions/command';
import { messageIdOf, type ActionQueue, type DeadLetteredMessage, type DeliveryHandler, type QueueMessage } from './queue';
import { isReevaluation } from './reevaluation';

/** The queue the worker is triggered by (functions/actionWorker.ts). */
export const ACTIONS_QUEUE = 'actions';

/** How the engine reaches Service Bus: the standard `ServiceBusConnection` app settings (config.ts reads them). */
export type ServiceBusConnection =
  { kind: 'connectionString'; connectionString: string } | { kind: 'identity'; fullyQualifiedNamespace: string; credential: TokenCredential };

/**
 * The action queue on Azure Service Bus. Every message carries its MessageId (the idempotency key, derived for retry
 * copies and follow-ups), so the broker's duplicate detection drops a re-send of the same step and nothing else.
 * `send` resolves only when the broker has accepted every command; the SDK's own retries are kept short (three
 * tries, 0.5 s and 1 s apart) because the caller behind it (the Sentinel relay) retries a 503 itself.
 */
export class ServiceBusActionQueue implements ActionQueue {
  private readonly sender: ServiceBusSender;
  private deadLetterReceiver: ServiceBusReceiver | undefined;
  private readonly receiving: Array<() => Promise<void>> = [];

  constructor(
    readonly client: ServiceBusClient,
    readonly queueName = ACTIONS_QUEUE,
  ) {
    this.sender = client.createSender(queueName);
  }

  async send(commands: readonly ActionCommand[]): Promise<void> {
    let batch = await this.sender.createMessageBatch();
    for (const command of commands) {
      const message = toServiceBusMessage(command);
      if (batch.tryAddMessage(message)) continue;
      if (batch.count === 0) throw new Error(`action ${command.id} does not fit in one Service Bus message`);
      await this.sender.sendMessages(batch);
      batch = await this.sender.createMessageBatch();
      if (!batch.tryAddMessage(message)) throw new Error(`action ${command.id} does not fit in one Service Bus message`);
    }
    if (batch.count > 0) await this.sender.sendMessages(batch);
  }

  async schedule(message: QueueMessage, at: Date): Promise<void> {
    await this.sender.scheduleMessages(toServiceBusMessage(message), at);
  }

  async receiveDeadLetters(max: number): Promise<DeadLetteredMessage[]> {
    this.deadLetterReceiver ??= this.client.createReceiver(this.queueName, { subQueueType: 'deadLetter', receiveMode: 'peekLock' });
    const receiver = this.deadLetterReceiver;
    const messages = await receiver.receiveMessages(max, { maxWaitTimeInMs: 2000 });
    return messages.map((message) => ({
      messageId: String(message.messageId ?? `sequence-${String(message.sequenceNumber)}`),
      body: message.body,
      reason: message.deadLetterReason ?? 'unknown',
      description: message.deadLetterErrorDescription ?? '',
      // No deliveryCount: in the dead-letter queue it counts deliveries from there, not the ones that failed.
      settle: () => receiver.completeMessage(message),
    }));
  }

  /**
   * Deliver the queue to `handler` the way the Functions Service Bus trigger does in Azure: peek-lock, the lock renewed
   * while the handler runs for up to `maxAutoLockRenewalMs` (host.json's maxAutoLockRenewalDuration, default five
   * minutes), return = complete, throw = abandon (redelivered at once), `deliveryCount` 1-based. The local host and the
   * tests use it; in Azure the Functions host does this itself.
   */
  start(handler: DeliveryHandler, options: { concurrency?: number; maxAutoLockRenewalMs?: number; onError?: (error: Error) => void } = {}): void {
    const receiver = this.client.createReceiver(this.queueName, {
      receiveMode: 'peekLock',
      maxAutoLockRenewalDurationInMs: options.maxAutoLockRenewalMs ?? 5 * 60_000,
    });
    const subscription = receiver.subscribe(
      {
        processMessage: (message) =>
          handler(message.body, {
            messageId: String(message.messageId),
            // The JavaScript SDK gives the AMQP header's count (0 on the first delivery); the Functions host, built on
            // the .NET SDK, gives ServiceBusReceivedMessage.DeliveryCount, which "starts at 1". Handlers see the latter.
            deliveryCount: (message.deliveryCount ?? 0) + 1,
            enqueuedTimeUtc: message.enqueuedTimeUtc?.toISOString() ?? '',
          }),
        processError: async ({ error }) => options.onError?.(error),
      },
      { autoCompleteMessages: true, maxConcurrentCalls: options.concurrency ?? 4 },
    );
    this.receiving.push(async () => {
      await subscription.close();
      await receiver.close();
    });
  }

  /** Stop what `start` began; sending still works. */
  async stop(): Promise<void> {
    for (const stop of this.receiving.splice(0)) await stop();
  }

  /** Stop receiving and close the client (the local host at exit). */
  async close(): Promise<void> {
    await this.stop();
    await this.deadLetterReceiver?.close();
    await this.sender.close();
    await this.client.close();
  }
}

/** A queue message on the wire: JSON in a data section (what the Functions trigger hands a Node handler as an object). */
export function toServiceBusMessage(message: QueueMessage): ServiceBusMessage {
  const base = { messageId: messageIdOf(message), body: message, contentType: 'application/json' };
  if (isReevaluation(message))
    return {
      ...base,
      subject: message.type,
      applicationProperties: message.type === 'reevaluateRisk' ? { risk: message.subject } : { incident: message.incidentArmId },
    };
  return {
    ...base,
    subject: message.kind,
    applicationProperties: { attempt: message.attempt, ...(message.source.incidentArmId && { incident: message.source.incidentArmId }) },
  };
}

/** One client per process, from the app settings: a connection string (emulators too) or the managed identity. */
export function createServiceBusClient(connection: ServiceBusConnection, endpoint?: { customEndpointAddress: string }): ServiceBusClient {
  // The SDK's default waits 30 s between tries; the relay calling POST /api/incidents would time out first.
  const options = {
    ...endpoint,
    retryOptions: { maxRetries: 2, timeoutInMs: 10_000, retryDelayInMs: 500, maxRetryDelayInMs: 2000, mode: RetryMode.Exponential },
  };
  return connection.kind === 'connectionString'
    ? new ServiceBusClient(connection.connectionString, options)
    : new ServiceBusClient(connection.fullyQualifiedNamespace, connection.credential, options);
}
