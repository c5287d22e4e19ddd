import { expect } from 'vitest';
import { requestAction, rollbackAction } from '../../functions/actions';
import type { LedgerEntry } from '../../shared/ledger/ledger';
import type { EngineUnderTest } from './engine';
import { call, type CallResult } from './http';

/** Two analysts, by their tokens' object ids: four eyes needs both. */
export const ANALYST_A = '0a0b0c0d-aaaa-4aaa-8aaa-aaaaaaaaaaaa';
export const ANALYST_B = '0a0b0c0d-bbbb-4bbb-8bbb-bbbbbbbbbbbb';

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
