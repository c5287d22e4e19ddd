import { ROLES } from '../shared/auth/caller';
import { defineHttpFunction } from '../shared/azure/httpFunction';
import { runtime } from '../shared/runtime';
import { normalizeSentinelPayload } from '../shared/signals/sentinel';
import { Fields, isRecord } from '../shared/signals/fields';
import { InputError } from '../shared/errors';
import { explainDecision } from '../shared/policy/explain';

/** Text only when asked for it explicitly (curl's default Accept is any type: JSON then). */
const prefersText = (accept: string | null): boolean => accept !== null && /^\s*text\/plain\b/i.test(accept);

/**
 * POST /api/plan — what-if: the decision for an incident, with no side effect. The body is a Sentinel payload, or
 * `{ "incident": <payload>, "policy": "<YAML>" }` to try a draft policy before deploying it. `Accept: text/plain`
 * returns the explanation `responder plan` prints, for a terminal.
 */
export const plan = defineHttpFunction({
  name: 'plan',
  route: 'plan',
  methods: ['POST'],
  auth: { roles: [ROLES.read] },
  body: 'json',
  async handle({ body, request }) {
    const draft = isRecord(body) && 'incident' in body ? Fields.of(body, '') : undefined;
    const signal = normalizeSentinelPayload(draft ? draft.get('incident') : body);
    const { engine, compileDraftPolicy } = await runtime();
    const policyText = draftPolicy(draft?.get('policy'));
    const decision = await engine.plan(signal, policyText === undefined ? undefined : compileDraftPolicy(policyText));
    if (prefersText(request.headers.get('accept'))) {
      return { status: 200, headers: { 'content-type': 'text/plain; charset=utf-8' }, body: `${explainDecision(decision)}\n` };
    }
    return { status: 200, jsonBody: { decision } };
  },
});

/** The draft policy as sent (untrimmed, so its digest is the file's); blank or absent means the deployed policy. */
function draftPolicy(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new InputError('policy', 'expected the policy as YAML text');
  return value.trim() === '' ? undefined : value;
}
