import { expect } from 'vitest';
import { requestAction, rollbackAction } from '../../functions/actions';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import type { EmbeddedQueue } from '../../shared/queue/embeddedQueue';
import { runtime } from '../../shared/runtime';
import type { EngineUnderTest } from './engine';
import { call, type CallResult } from './http';

/** Two analysts, by their tokens' object ids: four eyes needs both. */
export const ANALYST_A = '0a0b0c0d-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const ANALYST_B = '0a0b0c0d-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

/** A policy that enforces and plans nothing: only what analysts ask for is done. */
export const ENFORCE_NO_RULES = `version: 1
mode: enforce
rules: []
`;

/** An analyst's token with `roles`: analyst A unless told otherwise. */
export function analystBearer(engine: EngineUnderTest, roles: string[], oid: string = ANALYST_A, name = 'Analyst A'): Promise<Record<string, string>> {
  return engine.bearer(roles, { oid, name });
}

/** Ask for an action through POST /api/actions, run the queue to its end, and return the entry as the ledger ends it. */
export async function requestAndRun(engine: EngineUnderTest, body: Record<string, unknown>, headers: Record<string, string>): Promise<LedgerEntry> {
  const res = await call(requestAction, 'actions', { body: { reason: 'contain', ...body }, headers });
  expect(res.status).toBe(202);
  await engine.drain();
  return (await engine.ledger.get(res.json.action.key))!;
}

/** POST /api/actions/{key}/rollback. */
export function requestRollback(key: string, reason: string, headers: Record<string, string>): Promise<CallResult> {
  return call(rollbackAction, `actions/${key}/rollback`, { params: { key }, headers, body: { reason } });
}

/** An analyst's revokeSessions that Graph refuses for good (400), run to its end: it ends `failed`. */
export async function failedRevocation(engine: EngineUnderTest, target: string, headers: Record<string, string>): Promise<LedgerEntry> {
  engine.sandbox.faults.add({
    method: 'POST',
    path: /revokeSignInSessions$/,
    count: 1,
    status: 400,
    body: { error: { code: 'Request_BadRequest', message: 'no' } },
  });
  const queue = engine.startWorker();
  const failed = await requestAndRun(engine, { kind: 'revokeSessions', target }, headers);
  queue.stop();
  expect(failed.state).toBe('failed');
  return failed;
}

/**
 * An analyst's revokeSessions whose every delivery crashed its worker, on a queue configured to dead-letter at the first
 * (`maxDeliveryCount: 1`): Service Bus dead-letters it, and the reconciler records both.
 */
export async function deadLetteredRevocation(engine: EngineUnderTest, target: string, headers: Record<string, string>): Promise<LedgerEntry> {
  const asked = await call(requestAction, 'actions', { body: { kind: 'revokeSessions', target, reason: 'phished' }, headers });
  expect(asked.status).toBe(202);
  const queue = engine.queue as EmbeddedQueue;
  queue.start(async () => {
    throw new Error('the worker crashed');
  });
  await queue.idle();
  queue.stop();
  await (await runtime()).deadLetters.reconcile();
  return (await engine.ledger.get(asked.json.action.key))!;
}
