import { createServer, type Server } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import { testTls } from './tls';

export const TEST_TENANT = '5f1c7a3e-0b2d-4e6f-8a9b-1c2d3e4f5a6b';
export const TEST_AUDIENCE = 'api://sentinel-responder-test';

type Key = Awaited<ReturnType<typeof generateKeyPair>>['privateKey'];

/**
 * An Entra-style authority for tests, over HTTPS: it publishes signing keys at
 * `/{tenant}/discovery/v2.0/keys` (where the engine looks) and mints access tokens with them, so the engine's real
 * token validation runs unchanged. It also mints the bad tokens an attacker might try.
 */
export class TestAuthority {
  private constructor(
    /** Paths requested, in order: to see that the engine fetched the keys where it should. */
    readonly requests: string[],
    private readonly server: Server,
    readonly origin: string,
    private readonly signingKey: Key,
    private readonly kid: string,
    private readonly strangerKey: Key,
  ) {}

  static async start(): Promise<TestAuthority> {
    const { privateKey, publicKey } = await generateKeyPair('RS256');
    const stranger = await generateKeyPair('RS256');
    const jwk: JWK = { ...(await exportJWK(publicKey)), kid: 'test-key-1', use: 'sig', alg: 'RS256' };
    const tls = testTls();
    const requests: string[] = [];
    const server = createServer({ key: readFileSync(tls.keyPath), cert: readFileSync(tls.certPath) }, (req, res) => {
      requests.push(req.url ?? '');
      if (req.url === `/${TEST_TENANT}/discovery/v2.0/keys`) {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] }));
      } else {
        res.writeHead(404).end();
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return new TestAuthority(requests, server, origin, privateKey, 'test-key-1', stranger.privateKey);
  }

  /** The app settings that point the engine at this authority. */
  settings(): Record<string, string> {
    return { AZURE_TENANT_ID: TEST_TENANT, AZURE_AUTHORITY_HOST: this.origin, RESPONDER_AUDIENCE: TEST_AUDIENCE };
  }

  get issuer(): string {
    return `${this.origin}/${TEST_TENANT}/v2.0`;
  }

  /** A valid app-only token with `roles`; `claims` and `options` override anything. */
  async token(
    roles: string[],
    claims: Record<string, unknown> = {},
    options: { expiresIn?: string | number; key?: 'stranger'; kid?: string } = {},
  ): Promise<string> {
    return new SignJWT({ tid: TEST_TENANT, oid: '0a0b0c0d-1111-4222-8333-444455556666', roles, idtyp: 'app', appid: 'relay-logic-app', ...claims })
      .setProtectedHeader({ alg: 'RS256', kid: options.kid ?? this.kid, typ: 'JWT' })
      .setIssuer((claims.iss as string) ?? this.issuer)
      .setAudience((claims.aud as string) ?? TEST_AUDIENCE)
      .setIssuedAt()
      .setExpirationTime(options.expiresIn ?? '1h')
      .sign(options.key === 'stranger' ? this.strangerKey : this.signingKey);
  }

  /** An unsigned token (`alg: none`). */
  unsignedToken(roles: string[]): string {
    const part = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
    const now = Math.floor(Date.now() / 1000);
    return `${part({ alg: 'none', typ: 'JWT' })}.${part({ iss: this.issuer, aud: TEST_AUDIENCE, tid: TEST_TENANT, oid: 'x', roles, exp: now + 3600 })}.`;
  }

  /** An HS256 token keyed with a guessable secret: the classic algorithm-confusion attack. */
  async hmacToken(roles: string[]): Promise<string> {
    return new SignJWT({ tid: TEST_TENANT, oid: 'x', roles })
      .setProtectedHeader({ alg: 'HS256', kid: this.kid })
      .setIssuer(this.issuer)
      .setAudience(TEST_AUDIENCE)
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode('secret-secret-secret-secret-secret!'));
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
