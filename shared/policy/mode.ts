import type { Mode } from './schema';

/**
 * The engine's mode: audit wins, so it enforces only when both the policy and RESPONDER_MODE allow it. Apart from the
 * schema, so that the health endpoint can say it without loading zod at cold start.
 */
export function effectiveMode(policyMode: Mode, setting: Mode | undefined): Mode {
  return policyMode === 'audit' || setting === 'audit' ? 'audit' : 'enforce';
}
