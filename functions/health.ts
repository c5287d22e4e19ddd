import { ROLES } from '../shared/auth/caller';
import { defineHttpFunction } from '../shared/azure/httpFunction';
import { config } from '../shared/config';
import { effectiveMode } from '../shared/policy/mode';
import { runtime } from '../shared/runtime';

/**
 * GET /api/health — liveness for anyone (`{ status }`); configuration and policy details for callers with
 * Responder.Read, and with `?deep=true` the permission preflight. 503 when the engine cannot act (a missing setting,
 * an invalid policy); `degraded` when a permission the policy needs in the effective mode is missing (in audit mode,
 * the reads: missing writes are listed as needed to enforce).
 */
export const health = defineHttpFunction({
  name: 'health',
  route: 'health',
  methods: ['GET'],
  auth: { public: true, detailRoles: [ROLES.read] },
  async handle({ caller, request }) {
    const settings = config();
    const showDetails = caller?.roles.some((r) => r === ROLES.read) ?? false;
    let details: Record<string, unknown>;
    let ok: boolean;
    try {
      const { policy, queueStats } = await runtime();
      ok = true;
      // ?deep=true: the permission preflight (one token per API); for readers only, it costs token requests.
      const diagnosis =
        showDetails && request.query.get('deep') === 'true' ? await (await import('../shared/doctor.js')).diagnose(settings, policy) : undefined;
      details = {
        policy: { origin: policy.origin, digest: policy.digest, rules: policy.policy.rules.length },
        mode: { policy: policy.policy.mode, setting: settings.modeOverride, effective: effectiveMode(policy.policy.mode, settings.modeOverride) },
        auth: settings.auth,
        queue: queueStats(),
        ...(diagnosis && { permissions: diagnosis }),
      };
      if (diagnosis && !diagnosis.ok) details.degraded = 'permissions missing: see permissions';
    } catch (error) {
      ok = false;
      details = { problem: (error as Error).message };
    }
    const status = !ok ? 'unavailable' : details.degraded ? 'degraded' : 'ok';
    return { status: ok ? 200 : 503, jsonBody: showDetails ? { status, ...details } : { status } };
  },
});
