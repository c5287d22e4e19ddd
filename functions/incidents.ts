import { ROLES } from '../shared/auth/caller';
import { defineHttpFunction } from '../shared/azure/httpFunction';
import { runtime } from '../shared/runtime';
import { normalizeSentinelPayload } from '../shared/signals/sentinel';

/**
 * POST /api/incidents — the relay Logic App posts each Sentinel incident here (on create and on every update).
 * Answers 202 with the decision once its actions are recorded and enqueued; a replay of the same incident
 * enqueues nothing new (same idempotency keys).
 */
export const incidents = defineHttpFunction({
  name: 'incidents',
  route: 'incidents',
  methods: ['POST'],
  auth: { roles: [ROLES.submit] },
  body: 'json',
  async handle({ body, caller, log }) {
    const signal = normalizeSentinelPayload(body);
    const { engine } = await runtime();
    const submission = await engine.submit(signal, caller?.objectId ?? 'unknown', log);
    return { status: 202, jsonBody: submission };
  },
});
