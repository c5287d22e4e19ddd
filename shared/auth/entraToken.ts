// jose ships ES modules only; Node 20 loads them from CommonJS through import().
import type { JWTPayload, JWTVerifyGetKey } from 'jose' with { 'resolution-mode': 'import' };
import { signingKeysUrl, type ResponderConfig } from '../config';
import { AuthError, type Caller } from './caller';

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
let jose: Promise<Jose> | undefined;
/** jose loads on the first token, not at cold start. */
const loadJose = (): Promise<Jose> => (jose ??= import('jose'));

const remoteKeySets = new Map<string, JWTVerifyGetKey>();
async function keySet(config: ResponderConfig): Promise<JWTVerifyGetKey> {
  const url = signingKeysUrl(config);
  let keys = remoteKeySets.get(url.href);
  if (!keys) {
    // jose caches the key set and refetches it (at most every 30 s) when a token names an unknown key id.
    keys = (await loadJose()).createRemoteJWKSet(url, { timeoutDuration: 5000, cooldownDuration: 30_000, cacheMaxAge: 10 * 60_000 });
    remoteKeySets.set(url.href, keys);
  }
  return keys;
}

/**
 * Validate an Entra access token: RS256 only (never the algorithm the token claims), issuer (v2 and v1 forms of
 * our tenant), audience (our app), expiry with a minute of clock skew, tenant, and a subject. Roles come from the
 * `roles` claim.
 */
export async function verifyEntraToken(token: string, config: ResponderConfig): Promise<Caller> {
  const { jwtVerify, errors } = await loadJose();
  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, await keySet(config), {
      algorithms: ['RS256'],
      issuer: config.issuers,
      audience: config.audiences,
      clockTolerance: 60,
      requiredClaims: ['exp', 'iss', 'aud'],
    }));
  } catch (error) {
    if (error instanceof errors.JWKSTimeout || (error instanceof TypeError && /fetch/i.test(error.message))) {
      throw new AuthError(503, 'cannot fetch the tenant signing keys to validate the token: try again');
    }
    throw new AuthError(401, describeTokenError(error, errors));
  }
  if (config.tenantId && payload.tid !== config.tenantId) throw new AuthError(401, 'the token was issued for another tenant');
  const objectId = typeof payload.oid === 'string' ? payload.oid : typeof payload.sub === 'string' ? payload.sub : undefined;
  if (!objectId) throw new AuthError(401, 'the token has no subject (oid)');
  const roles = Array.isArray(payload.roles) ? payload.roles.filter((r): r is string => typeof r === 'string') : [];
  const name = [payload.upn, payload.preferred_username, payload.name, payload.appid, payload.azp].find((v): v is string => typeof v === 'string') ?? objectId;
  // App-only tokens carry idtyp=app (v2) or no scp claim; delegated (user) tokens carry scp.
  const kind = payload.idtyp === 'app' || (payload.scp === undefined && payload.idtyp !== 'user') ? 'app' : 'user';
  return { objectId, name, roles, tenantId: typeof payload.tid === 'string' ? payload.tid : undefined, kind, via: 'entra' };
}

function describeTokenError(error: unknown, errors: Jose['errors']): string {
  if (error instanceof errors.JWTExpired) return 'the token has expired';
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claim = error.claim;
    if (claim === 'aud') return 'the token is not for this API (audience not accepted)';
    if (claim === 'iss') return 'the token was not issued by the expected authority (issuer not accepted)';
    if (claim === 'nbf') return 'the token is not valid yet';
    return `the token's ${claim} claim is not accepted`;
  }
  if (error instanceof errors.JOSEAlgNotAllowed) return 'the token is not signed with RS256';
  if (error instanceof errors.JWKSNoMatchingKey) return 'the token is signed with a key the tenant does not publish';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'the token signature is invalid';
  return 'the token is malformed or unsigned';
}
