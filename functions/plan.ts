import { ROLES } from '../shared/auth/caller';
import { defineHttpFunction } from '../shared/azure/httpFunction';
import { runtime } from '../shared/runtime';
import { normalizeSentinelPayload } from '../shared/signals/sentinel';
import { Fields, isRecord } from '../shared/signals/fields';

/**
 * POST /api/plan — what-if: the decision for an incident, with no side effect. The body is a Sentinel payload, or
 * `{ "incident": <payload>, "policy": "<YAML>" }` to try a draft policy before deploying it.
 */
export const plan = defineHttpFunction({
  name: 'plan',
  route: 'plan',
  methods: ['POST'],
  auth: { roles: [ROLES.read] },
  body: 'json',
  async handle({ body }) {
    const draft = isRecord(body) && 'incident' in body ? Fields.of(body, '') : undefined;
    const signal = normalizeSentinelPayload(draft ? draft.get('incident') : body);
    const { engine, compileDraftPolicy } = await runtime();
    const policyText = draft?.string('policy');
    const decision = await engine.plan(signal, policyText === undefined ? undefined : compileDraftPolicy(policyText));
    return { status: 200, jsonBody: { decision } };
  },
});
