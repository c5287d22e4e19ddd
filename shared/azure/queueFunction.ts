import { app, type InvocationContext } from '@azure/functions';
import type { QueueDelivery } from '../queue/queue';
import { logger, withLogSink, type Logger } from '../log';
import { functionsHostPresent, registry } from './registry';

export interface QueueFunctionSpec {
  name: string;
  queueName: string;
  /** App setting prefix of the connection: `ServiceBusConnection` (a connection string, or `__fullyQualifiedNamespace` for managed identity). */
  connection: string;
  handle(message: unknown, delivery: QueueDelivery, log: Logger): Promise<void>;
}

/**
 * Register a Service Bus queue-triggered function. Returning completes the message; throwing abandons it and the
 * broker redelivers it at once (no backoff in Node: reference/servicebus.md), so handlers throw only for failures
 * a prompt retry can fix.
 */
export function defineQueueFunction(spec: QueueFunctionSpec): (message: unknown, context: InvocationContext) => Promise<void> {
  const handler = (message: unknown, context: InvocationContext): Promise<void> =>
    withLogSink(context, () => {
      const meta = context.triggerMetadata ?? {};
      const delivery: QueueDelivery = {
        messageId: String(meta.messageId ?? ''),
        deliveryCount: Number(meta.deliveryCount ?? 1),
        enqueuedTimeUtc: String(meta.enqueuedTimeUtc ?? ''),
      };
      return spec.handle(
        decodeBody(message),
        delivery,
        logger().child({ invocationId: context.invocationId, function: spec.name, messageId: delivery.messageId }),
      );
    });
  registry.queues.push({ name: spec.name, queueName: spec.queueName, connection: spec.connection, handler });
  if (functionsHostPresent()) app.serviceBusQueue(spec.name, { queueName: spec.queueName, connection: spec.connection, handler });
  return handler;
}

/**
 * The trigger hands a Node handler an object when the host recognised JSON, else the text or the bytes: all three
 * arrive here as the parsed value. Text that is not JSON stays text, for the worker to refuse with a reason.
 */
export function decodeBody(message: unknown): unknown {
  const text = typeof message === 'string' ? message : message instanceof Uint8Array ? Buffer.from(message).toString('utf8') : undefined;
  if (text === undefined) return message;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}
