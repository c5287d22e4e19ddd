import { app, type InvocationContext, type RetryOptions } from '@azure/functions';
import { logger, withLogSink, type Logger } from '../log';
import { decodeBody } from './queueFunction';
import { functionsHostPresent, registry } from './registry';

/** One event of a batch: its body parsed (JSON, else text), and where it sits in its partition. */
export interface HubEvent {
  body: unknown;
  partitionId?: string;
  sequenceNumber?: number;
  enqueuedTimeUtc?: string;
}

export interface EventHubFunctionSpec {
  name: string;
  /** The hub, or `%SETTING%`: the app setting naming it, resolved by the host at runtime. */
  eventHubName: string;
  /** App setting prefix of the connection: a connection string, or `__fullyQualifiedNamespace` for managed identity. */
  connection: string;
  consumerGroup?: string;
  /** Retried, then the host moves on (Event Hubs has no dead letter): only a failure a retry can fix should throw. */
  retry: RetryOptions;
  handle(events: HubEvent[], log: Logger): Promise<void>;
}

/**
 * Register an Event Hub-triggered function, taking events in batches (`cardinality: many`). The host checkpoints a
 * batch once the function returns or its retries are spent: a handler answers every event it can, and throws only
 * when a retry may help (reference: learn.microsoft.com/azure/azure-functions/functions-bindings-event-hubs-trigger,
 * functions-bindings-error-pages). The local host drives the same handler from @azure/event-hubs.
 */
export function defineEventHubFunction(spec: EventHubFunctionSpec): (messages: unknown[], context: InvocationContext) => Promise<void> {
  const handler = (messages: unknown[], context: InvocationContext): Promise<void> =>
    withLogSink(context, () => {
      const meta = context.triggerMetadata ?? {};
      const at = (name: string, i: number): unknown => (Array.isArray(meta[name]) ? (meta[name] as unknown[])[i] : undefined);
      // The host names the batch's partition in partitionContext (cardinality many).
      const partition = (meta.partitionContext as { partitionId?: unknown } | undefined)?.partitionId;
      const events = (Array.isArray(messages) ? messages : [messages]).map((message, i): HubEvent => {
        const sequenceNumber = Number(at('sequenceNumberArray', i));
        const enqueued = at('enqueuedTimeUtcArray', i);
        return {
          body: decodeBody(message),
          ...(typeof partition === 'string' && { partitionId: partition }),
          ...(Number.isFinite(sequenceNumber) && { sequenceNumber }),
          ...(enqueued !== undefined && { enqueuedTimeUtc: String(enqueued) }),
        };
      });
      return spec.handle(events, logger().child({ invocationId: context.invocationId, function: spec.name }));
    });
  const { name, eventHubName, connection, consumerGroup, retry } = spec;
  registry.eventHubs.push({ name, eventHubName, connection, consumerGroup: consumerGroup ?? '$Default', retry, handler });
  if (functionsHostPresent()) app.eventHub(name, { eventHubName, connection, consumerGroup, cardinality: 'many', retry, handler });
  return handler;
}
