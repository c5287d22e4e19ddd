import { randomUUID } from 'node:crypto';
import { useLocalSigningKeys } from '../shared/auth/entraToken';
import { ROLES } from '../shared/auth/caller';

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });

export interface LocalAuthority {
  issuer: string;
  /** Mint an access token for the configured audience, carrying `roles`. */
  mint(roles: string[], subject?: { oid: string; name: string }, lifetime?: string): Promise<string>;
}

/**
 * The local host's dev authority: a key pair made at start-up and never written anywhere; the engine receives its
 * public key in process (useLocalSigningKeys, which refuses to run in Azure). So the local host validates real RS256
 * tokens through the same code as production, with no bypass and no setting that could enable one.
 */
export async function startLocalAuthority(tenantId: string, audience: string, authorityHost: string): Promise<LocalAuthority> {
  const jose: Jose = await import('jose');
  const { privateKey, publicKey } = await jose.generateKeyPair('RS256');
  const kid = `local-${randomUUID()}`;
  const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'RS256', use: 'sig' };
  const issuer = `${authorityHost}/${tenantId}/v2.0`;
  useLocalSigningKeys(jose.createLocalJWKSet({ keys: [jwk] }), issuer);
  return {
    issuer,
    mint: (roles, subject = { oid: LOCAL_DEVELOPER_OID, name: 'local-developer' }, lifetime = '12h') =>
      new jose.SignJWT({ tid: tenantId, oid: subject.oid, roles, name: subject.name, idtyp: 'app' })
        .setProtectedHeader({ alg: 'RS256', kid, typ: 'JWT' })
        .setIssuer(issuer)
        .setAudience(audience)
        .setIssuedAt()
        .setExpirationTime(lifetime)
        .sign(privateKey),
  };
}

export const LOCAL_DEVELOPER_OID = '00000de0-0000-4000-8000-000000000001';
export const ALL_ROLES = Object.values(ROLES);
