/** App roles the engine's app registration defines (reference/security.md). */
export const ROLES = {
  /** The relay Logic App's managed identity: submit Sentinel incidents. */
  submit: 'Incidents.Submit',
  /** Analysts and tools: read decisions, plans, health details, the ledger. */
  read: 'Responder.Read',
  /** Analysts: request actions and rollbacks by hand. */
  act: 'Responder.Act',
  /** Analysts: approve or deny held actions (never their own requests). */
  approve: 'Responder.Approve',
} as const;
export type Role = (typeof ROLES)[keyof typeof ROLES];

/** Who is calling, once authenticated. */
export interface Caller {
  /** Entra object id (`oid`): what the ledger records as the actor. */
  objectId: string;
  /** A display name for logs and comments: UPN, name, or the app id. */
  name: string;
  roles: string[];
  tenantId: string | undefined;
  /** `user` for a signed-in analyst, `app` for a managed identity or service principal. */
  kind: 'user' | 'app';
  via: 'entra' | 'easyauth';
}

/** Authentication (401), authorization (403), or the engine cannot check at all (503). */
export class AuthError extends Error {
  override readonly name = 'AuthError';
  constructor(
    readonly status: 401 | 403 | 503,
    message: string,
  ) {
    super(message);
  }
}

export function authorize(caller: Caller, anyOf: readonly string[]): void {
  if (anyOf.some((role) => caller.roles.includes(role))) return;
  throw new AuthError(403, `the caller lacks the app role ${anyOf.join(' or ')} (has ${caller.roles.length ? caller.roles.join(', ') : 'no roles'})`);
}

/** Is this process running in Azure App Service / Functions? Those platforms set these; a developer machine does not. */
export function runningInAzure(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.WEBSITE_INSTANCE_ID || env.WEBSITE_SITE_NAME || env.WEBSITE_OWNER_NAME);
}
