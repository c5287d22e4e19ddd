import { ROLES } from '../shared/auth/caller';
import type { LedgerEntry } from '../shared/ledger/ledger';
import type { Decision } from '../shared/policy/decision';
import { defineHttpFunction, type HttpResponseInit } from '../shared/azure/httpFunction';
import { runtime } from '../shared/runtime';
import { actionRequest, analystOf, decisionReason, listFilter, pageSize, routeKey } from '../shared/analystRequests';
import { RefusedError } from '../shared/errors';

/** GET /api/actions — the ledger for analysts: filters state, kind, target, incident, since; newest first, paged. */
export const listActions = defineHttpFunction({
  name: 'listActions',
  route: 'actions',
  methods: ['GET'],
  auth: { roles: [ROLES.read] },
  async handle({ request }) {
    const { analysts } = await runtime();
    const query = request.query;
    const page = await analysts.list(listFilter(query), pageSize(query.get('limit')), query.get('after') ?? undefined);
    const next = page.next === undefined ? undefined : nextLink(request.url, page.next);
    return { status: 200, jsonBody: { actions: page.actions, ...(next && { next }) } };
  },
});

/**
 * POST /api/actions — an analyst asks for one action: `{ kind, target, reason, incident?, params? }`. The same policy
 * as automation judges it (source: manual): 202 with the action queued or held for approval; 403 Protected and 429
 * CircuitOpen are recorded `blocked`; 409 when the same action on the target is already under way.
 */
export const requestAction = defineHttpFunction({
  name: 'requestAction',
  route: 'actions',
  methods: ['POST'],
  auth: { roles: [ROLES.act] },
  body: 'json',
  async handle({ body, caller, log }) {
    const { engine } = await runtime();
    const { decision, entry } = await engine.request(actionRequest(body, analystOf(caller)), log);
    return requestAnswer(decision, entry);
  },
});

/** GET /api/actions/{key} — one action with its whole history, attempts and the analysts' word on it. */
export const showAction = defineHttpFunction({
  name: 'showAction',
  route: 'actions/{key}',
  methods: ['GET'],
  auth: { roles: [ROLES.read] },
  async handle({ request }) {
    const { analysts } = await runtime();
    return { status: 200, jsonBody: { action: await analysts.show(routeKey(request.params.key)) } };
  },
});

/** POST /api/actions/{key}/approve — body { reason }: a held action goes to the queue and runs once. Four eyes. */
export const approveAction = defineHttpFunction({
  name: 'approveAction',
  route: 'actions/{key}/approve',
  methods: ['POST'],
  auth: { roles: [ROLES.approve] },
  body: 'json',
  async handle({ request, body, caller, log }) {
    const { analysts } = await runtime();
    const action = await analysts.approve(routeKey(request.params.key), analystOf(caller), decisionReason(body), log);
    return { status: 202, jsonBody: { action } };
  },
});

/** POST /api/actions/{key}/deny — body { reason }: a held action ends `denied`, and nothing is done. */
export const denyAction = defineHttpFunction({
  name: 'denyAction',
  route: 'actions/{key}/deny',
  methods: ['POST'],
  auth: { roles: [ROLES.approve] },
  body: 'json',
  async handle({ request, body, caller, log }) {
    const { analysts } = await runtime();
    const action = await analysts.deny(routeKey(request.params.key), analystOf(caller), decisionReason(body), log);
    return { status: 200, jsonBody: { action } };
  },
});

/** This request's URL with `after` set to where the next page starts. */
function nextLink(url: string, after: string): string {
  const next = new URL(url);
  next.searchParams.set('after', after);
  return `${next.pathname}${next.search}`;
}

/**
 * POST /api/actions/{key}/rollback — body { reason }: undo a succeeded disableUser, isolateDevice or
 * requirePimReapproval the engine carried out, as a new action under the same guardrails; 409 for what cannot be undone.
 */
export const rollbackAction = defineHttpFunction({
  name: 'rollbackAction',
  route: 'actions/{key}/rollback',
  methods: ['POST'],
  auth: { roles: [ROLES.act] },
  body: 'json',
  async handle({ request, body, caller, log }) {
    const { engine } = await runtime();
    const { decision, entry } = await engine.rollback(routeKey(request.params.key), analystOf(caller), decisionReason(body), log);
    return requestAnswer(decision, entry);
  },
});

/**
 * POST /api/actions/{key}/replay — body { reason }: send a failed or dead-lettered action again, fresh attempts, recorded
 * as the caller's; 409 NotReplayable in any other state, HeldByAnother for a rollback another containment now blocks;
 * 429 CircuitOpen past one of the policy's caps, the action left as it was.
 */
export const replayAction = defineHttpFunction({
  name: 'replayAction',
  route: 'actions/{key}/replay',
  methods: ['POST'],
  auth: { roles: [ROLES.act] },
  body: 'json',
  async handle({ request, body, caller, log }) {
    const { engine } = await runtime();
    const action = await engine.replay(routeKey(request.params.key), analystOf(caller), decisionReason(body), log);
    return { status: 202, jsonBody: { action } };
  },
});

/** 202 with the new action, queued or held; or why the policy refused it (recorded blocked), or that it found no one. */
function requestAnswer(decision: Decision, entry: LedgerEntry | undefined): HttpResponseInit {
  const skip = decision.skipped[0];
  if (skip?.reason === 'protected') {
    const undo = entry?.source.rollbackOf ? ': the engine never acts on a protected target, not even to undo its own action; undo it by hand' : '';
    throw new RefusedError(403, 'Protected', `refused: ${skip.detail}${undo}`, entry);
  }
  if (skip?.reason === 'circuit-open') throw new RefusedError(429, 'CircuitOpen', skip.detail, entry);
  if (entry === undefined) throw new RefusedError(404, 'TargetNotFound', skip?.detail ?? 'the request names no target the engine can find');
  return { status: 202, jsonBody: { action: entry, decision } };
}
