import { ROLES } from '../shared/auth/caller';
import { defineHttpFunction } from '../shared/azure/httpFunction';
import { config } from '../shared/config';
import { runtime } from '../shared/runtime';

/**
 * GET /api/health — liveness for anyone (`{ status }`); configuration and policy details for callers with
 * Responder.Read. 503 when the engine cannot act (a missing setting, an invalid policy).
 */
export const health = defineHttpFunction({
  name: 'health',
  route: 'health',
  methods: ['GET'],
  auth: { public: true, detailRoles: [ROLES.read] },
  async handle({ caller }) {
    const settings = config();
    let details: Record<string, unknown>;
    let ok: boolean;
    try {
      const { policy, queueStats } = await runtime();
      ok = true;
      details = {
        policy: { origin: policy.origin, digest: policy.digest, rules: policy.policy.rules.length },
        // audit wins: the engine enforces only when both the policy and RESPONDER_MODE allow it.
        mode: {
          policy: policy.policy.mode,
          setting: settings.modeOverride,
          effective: policy.policy.mode === 'audit' || settings.modeOverride === 'audit' ? 'audit' : 'enforce',
        },
        auth: settings.auth,
        queue: queueStats(),
      };
    } catch (error) {
      ok = false;
      details = { problem: (error as Error).message };
    }
    const status = ok ? 'ok' : 'unavailable';
    const showDetails = caller?.roles.some((r) => r === ROLES.read) ?? false;
    return { status: ok ? 200 : 503, jsonBody: showDetails ? { status, ...details } : { status } };
  },
});
