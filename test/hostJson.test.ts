import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MAX_HOLD_MS } from '../shared/actions/lifecycle';

/** host.json as the Functions host reads it; docs/deploy.md (host.json) says why each value. */
const host = JSON.parse(readFileSync(path.join(__dirname, '../host.json'), 'utf8')) as {
  functionTimeout: string;
  extensions: {
    serviceBus: { autoCompleteMessages: boolean; maxConcurrentCalls: number; maxAutoLockRenewalDuration: string; prefetchCount: number };
    eventHubs: { maxEventBatchSize: number; batchCheckpointFrequency: number; initialOffsetOptions: { type: string } };
  };
};

const timeSpanMs = (text: string) => {
  const [hours, minutes, seconds] = text.split(':').map(Number) as [number, number, number];
  return ((hours * 60 + minutes) * 60 + seconds) * 1000;
};

describe('host.json', () => {
  it('bounds an execution by the time the worker keeps its claim, and renews the message lock as long', () => {
    expect(timeSpanMs(host.functionTimeout)).toBe(MAX_HOLD_MS);
    expect(timeSpanMs(host.extensions.serviceBus.maxAutoLockRenewalDuration)).toBe(MAX_HOLD_MS);
  });

  it("settles a Service Bus message by the handler's return, and locks none before a handler takes it", () => {
    // Node handlers cannot settle explicitly: return completes, throw abandons (reference/servicebus.md).
    expect(host.extensions.serviceBus.autoCompleteMessages).toBe(true);
    expect(host.extensions.serviceBus.prefetchCount).toBe(0);
  });

  it('checkpoints every risk-log batch, reading a new hub from its start', () => {
    expect(host.extensions.eventHubs).toEqual({ maxEventBatchSize: 100, batchCheckpointFrequency: 1, initialOffsetOptions: { type: 'fromStart' } });
  });
});
