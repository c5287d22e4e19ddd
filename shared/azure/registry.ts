import { app, type HttpRequest, type HttpResponseInit, type InvocationContext, type RetryOptions, type Timer } from '@azure/functions';
import { flushMetrics } from '../runtime';
import type { AuthRequirement } from './httpFunction';

/**
 * Every function the app registers, recorded as it registers. Without the Functions host, @azure/functions has no
 * host to hand functions to and keeps no list of its own; the local host serves from this one, and a test walks it to
 * prove that every HTTP route is guarded.
 */
export interface HttpRegistration {
  name: string;
  route: string;
  methods: readonly HttpMethod[];
  auth: AuthRequirement;
  handler: (request: HttpRequest, context: InvocationContext) => Promise<HttpResponseInit>;
}

export interface QueueRegistration {
  name: string;
  queueName: string;
  connection: string;
  handler: (message: unknown, context: InvocationContext) => Promise<void>;
}

export interface EventHubRegistration {
  name: string;
  eventHubName: string;
  connection: string;
  consumerGroup: string;
  retry: RetryOptions;
  handler: (messages: unknown[], context: InvocationContext) => Promise<void>;
}

export interface TimerRegistration {
  name: string;
  schedule: string;
  runOnStartup: boolean;
  handler: (timer: Timer, context: InvocationContext) => Promise<void>;
}

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export const registry = {
  http: [] as HttpRegistration[],
  queues: [] as QueueRegistration[],
  timers: [] as TimerRegistration[],
  eventHubs: [] as EventHubRegistration[],
};

/**
 * Whether a Functions host runs this process, so app.* can hand it functions: its Node worker provides
 * @azure/functions-core as a built-in module (not an npm package), and @azure/functions tells by the same require.
 * Elsewhere (the local host, tests) app.* could only warn that it is in test mode, so the adapters skip it.
 */
export function functionsHostPresent(): boolean {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- resolves only inside the Functions worker
    require('@azure/functions-core');
    return true;
  } catch {
    return false;
  }
}

// The host stopping the instance (scale-in, a deployment) gives it time to send what its metrics hold. A worker too old
// for hooks loses the last minute's metrics instead: never a reason for the app not to load.
if (functionsHostPresent()) {
  try {
    app.hook.appTerminate(() => flushMetrics());
  } catch {
    // no hooks in this worker
  }
}

/**
 * The parameters of `path` (below /api/) under a route template as Azure Functions writes them (`actions/{key}/approve`),
 * or undefined when it does not match. A parameter is one path segment, never empty; segments are URL-decoded.
 */
export function matchRoute(template: string, path: string): Record<string, string> | undefined {
  const want = template.split('/');
  const got = path.split('/');
  if (want.length !== got.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < want.length; i++) {
    const part = want[i] as string;
    const segment = got[i] as string;
    const name = /^\{(\w+)\}$/.exec(part)?.[1];
    if (name === undefined) {
      if (part.toLowerCase() !== segment.toLowerCase()) return undefined;
      continue;
    }
    if (segment === '') return undefined;
    try {
      params[name] = decodeURIComponent(segment);
    } catch {
      return undefined;
    }
  }
  return params;
}
