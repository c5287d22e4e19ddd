import { ROLES } from '../shared/auth/caller';
import { defineHttpFunction } from '../shared/azure/httpFunction';
import { runtime } from '../shared/runtime';
import { analystOf, decisionReason, listFilter, pageSize, routeKey } from '../shared/analystRequests';

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
