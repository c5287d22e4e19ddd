import type { ResponderConfig } from '../config';
import { AuthError, type Caller } from './caller';
import { callerFromEasyAuth } from './easyAuth';
import { verifyEntraToken } from './entraToken';

/** What the guard needs from a request: its headers. */
export interface HeaderSource {
  get(name: string): string | null;
}

/**
 * Who is calling, or undefined when the request carries no credentials at all (the route decides whether that is
 * allowed). Invalid credentials always fail: a bad token is never treated as no token.
 */
export async function authenticate(headers: HeaderSource, config: ResponderConfig): Promise<Caller | undefined> {
  if (config.auth === 'easyauth') {
    if (!config.easyAuthEnabled) throw new AuthError(503, 'RESPONDER_AUTH=easyauth, but App Service Authentication is not enabled: no caller can be trusted');
    const principal = headers.get('x-ms-client-principal');
    return principal ? callerFromEasyAuth(principal, config.tenantId) : undefined;
  }
  const authorization = headers.get('authorization');
  if (!authorization) return undefined;
  const match = /^Bearer\s+([\w-]+\.[\w-]*\.[\w-]*)\s*$/i.exec(authorization);
  if (!match) throw new AuthError(401, 'the Authorization header must be "Bearer <access token>"');
  if (config.tenantId === undefined || config.audiences.length === 0)
    throw new AuthError(503, 'authentication is not configured (AZURE_TENANT_ID, RESPONDER_AUDIENCE)');
  return verifyEntraToken(match[1] as string, config);
}
