import { randomUUID } from 'node:crypto';
import type { JWK } from 'jose' with { 'resolution-mode': 'import' };

type Jose = typeof import('jose', { with: { 'resolution-mode': 'import' } });
type Key = Awaited<ReturnType<Jose['generateKeyPair']>>['privateKey'];

/** The sandbox tenant's Entra tenant id and the engine's app ID URI its tokens are issued for. */
export const SANDBOX_TENANT_ID = '5f1c7a3e-0b2d-4e6f-8a9b-1c2d3e4f5a6b';
export const SANDBOX_AUDIENCE = 'api://sentinel-responder';

/**
 * The sandbox's Entra-style authority: it publishes its signing keys where the engine looks for them
 * (`{authority}/{tenant}/discovery/v2.0/keys`) and mints access tokens, so the engine's own token validation runs
 * unchanged against it — locally and in tests, with no bypass. It also mints what an attacker would try: unsigned,
 * HS256, and tokens signed by a key the tenant does not publish.
 */
export class SandboxAuthority {
  private constructor(
    private readonly jose: Jose,
    readonly origin: string,
    private readonly signingKey: Key,
    private readonly strangerKey: Key,
    private readonly kid: string,
    /** The public signing keys, as served. */
    readonly jwks: { keys: JWK[] },
  ) {}

  static async create(origin: string): Promise<SandboxAuthority> {
    const jose: Jose = await import('jose');
    const { privateKey, publicKey } = await jose.generateKeyPair('RS256');
    const stranger = await jose.generateKeyPair('RS256');
    const kid = `sandbox-${randomUUID()}`;
    const jwk = { ...(await jose.exportJWK(publicKey)), kid, use: 'sig', alg: 'RS256' };
    return new SandboxAuthority(jose, origin, privateKey, stranger.privateKey, kid, { keys: [jwk] });
  }

  get issuer(): string {
    return `${this.origin}/${SANDBOX_TENANT_ID}/v2.0`;
  }

  /** A valid app-only access token carrying `roles`; `claims` (including iss and aud) and `options` override. */
  token(roles: string[], claims: Record<string, unknown> = {}, options: { expiresIn?: string | number; key?: 'stranger'; kid?: string } = {}): Promise<string> {
    return new this.jose.SignJWT({
      tid: SANDBOX_TENANT_ID,
      oid: '0a0b0c0d-1111-4222-8333-444455556666',
      roles,
      idtyp: 'app',
      appid: 'relay-logic-app',
      ...claims,
    })
      .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? this.kid, typ: 'JWT' })
      .setIssuer((claims.iss as string) ?? this.issuer)
      .setAudience((claims.aud as string) ?? SANDBOX_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? '1h')
      .sign(options.key === 'stranger' ? this.strangerKey : this.signingKey);
  }

  /** An unsigned token (`alg: none`). */
  unsignedToken(roles: string[]): string {
    const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const exp = Math.floor(Date.now() / 1000) + 3600;
    return `${part({ alg: 'none', typ: 'JWT' })}.${part({ iss: this.issuer, aud: SANDBOX_AUDIENCE, tid: SANDBOX_TENANT_ID, oid: 'x', roles, exp })}.`;
  }

  /** An HS256 token keyed with a guessable secret: the classic algorithm-confusion attack. */
  hmacToken(roles: string[]): Promise<string> {
    return new this.jose.SignJWT({ tid: SANDBOX_TENANT_ID, oid: 'x', roles })
      .setProtectedHeader({ alg: 'HS256', kid: this.kid })
      .setIssuer(this.issuer)
      .setAudience(SANDBOX_AUDIENCE)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('secret-secret-secret-secret-secret!'));
  }
}
