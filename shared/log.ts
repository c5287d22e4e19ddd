import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';
import { config } from './config';

export type { Logger } from 'pino';

/**
 * Logging: one pino logger per process, created on first use (pino is slow to load; cold start matters).
 * Lines go to whatever sink the current invocation installed (the Functions InvocationContext, so they reach
 * Application Insights with the invocation id), else to stdout. Secrets never reach a sink: known fields are
 * redacted by path, and strings are scrubbed of bearer tokens, JWTs and connection-string keys.
 */

/** Structurally what InvocationContext offers; keeps Azure Functions types out of the engine. */
export interface LogSink {
  trace(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  info(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}

const sinks = new AsyncLocalStorage<LogSink>();

/** Run `fn` with its log lines routed to `sink` (one invocation's context). */
export function withLogSink<T>(sink: LogSink, fn: () => T): T {
  return sinks.run(sink, fn);
}

export const REDACTED_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'headers["x-ms-client-principal"]',
  '*.headers["x-ms-client-principal"]',
  'token',
  '*.token',
  'accessToken',
  '*.accessToken',
  'connectionString',
  '*.connectionString',
  'clientSecret',
  '*.clientSecret',
  'password',
  '*.password',
  'sharedAccessKey',
  '*.sharedAccessKey',
];

/**
 * Each runs in time linear in the text (test/redos.test.ts holds them to it on 1 MB): log lines carry host names and
 * other outside text. A JWT may start only where no [\w-] precedes it, so each run of those characters is tried from
 * its start alone (with `\b`, every `eyJ` after a `-` would be tried to the run's end: quadratic on `eyJ-eyJ-…`).
 */
const SECRET_PATTERNS: Array<[RegExp, string]> = [
  [/\bBearer\s+[\w.~+/=-]+/gi, 'Bearer [redacted]'],
  [/(?<![\w-])eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]*/g, '[redacted-jwt]'],
  [/\b(SharedAccessKey|AccountKey|SharedAccessSignature|sig|client_secret|ClientSecret)=[^;&\s"]+/gi, '$1=[redacted]'],
];

/** Remove anything that looks like a credential from free text (messages, error strings). */
export function scrubSecrets(text: string): string {
  let out = text;
  for (const [pattern, replacement] of SECRET_PATTERNS) out = out.replace(pattern, replacement);
  return out;
}

const LEVEL_METHOD: Record<string, keyof LogSink> = { trace: 'trace', debug: 'debug', info: 'info', warn: 'warn', error: 'error', fatal: 'error' };

let root: Logger | undefined;

export function logger(): Logger {
  root ??= createLogger(config().logLevel, {
    write(line: string) {
      const sink = sinks.getStore();
      if (!sink) {
        process.stdout.write(line);
        return;
      }
      // Lines start with {"level":"<label>" (see formatters.level below).
      const label = /^\{"level":"(\w+)"/.exec(line)?.[1] ?? 'info';
      sink[LEVEL_METHOD[label] ?? 'info'](line.trimEnd());
    },
  });
  return root;
}

/** A pino logger writing to `destination`; exported for tests that read what was logged. */
export function createLogger(level: string, destination: { write(line: string): void }): Logger {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- loaded on first use, not at import
  const pino = require('pino') as typeof import('pino');
  return pino(
    {
      level,
      base: { service: 'sentinel-responder' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
      serializers: { err: (err: Error) => ({ type: err.name, message: scrubSecrets(err.message), stack: err.stack && scrubSecrets(err.stack) }) },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? scrubSecrets(a) : a)) as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}
