import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import { sandboxTls } from './tls';
import { Faults } from './faults';
import { armRoutes } from './arm';
import { SANDBOX_AUDIENCE, SANDBOX_TENANT_ID, SandboxAuthority } from './authority';
import { defenderRoutes } from './defender';
import { graphRoutes } from './graph';
import { forbidden } from './permissions';
import { apiError, type Route, type SandboxAnswer, type SandboxRequest } from './routes';
import { SAMPLE_WORKSPACE_ID, SandboxTenant } from './tenant';

/** Every API the sandbox serves, over one tenant's state: the HTTPS server's, or an in-process twin's (the fault campaign). */
export function tenantRoutes(tenant: SandboxTenant): Route[] {
  return [graphRoutes(tenant), defenderRoutes(tenant), armRoutes(tenant)];
}

/**
 * The sandbox tenant, served over HTTPS with a throwaway certificate (sandbox/tls.ts), so the real clients (the Graph
 * client, @azure/identity, the ARM SDK, Defender over fetch) run unchanged against it.
 * - `/{tenant}/discovery/v2.0/keys`: an Entra-style authority's signing keys (sandbox/authority.ts), so the
 *   engine validates the tokens the sandbox mints with its production code.
 * - `/msi/token`: an App Service-style managed identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER), so
 *   DefaultAzureCredential works as in Azure. It mints opaque tokens and remembers their audience.
 * - `/v1.0/...`: the Graph endpoints the engine uses (sandbox/graph.ts).
 * - `/api/...`: the Defender for Endpoint endpoints (sandbox/defender.ts).
 * - `/subscriptions/.../incidents/...`: Sentinel incidents and comments over ARM (sandbox/arm.ts).
 * Every API call must carry a token minted here for that API's origin, or it gets 401, and a Graph or Defender call
 * needs an application permission among that token's roles (sandbox/permissions.ts), or it gets 403, as in Azure.
 */
export class Sandbox {
  readonly faults = new Faults();
  readonly identityHeader = randomBytes(16).toString('hex');
  /** Each token minted: the API origin it is for and the app roles it carries, fixed when it was issued, as Entra's. */
  private readonly tokens = new Map<string, { audience: string; roles: readonly string[] }>();
  private readonly routes: Route[];

  private constructor(
    readonly tenant: SandboxTenant,
    private readonly server: Server,
    readonly origin: string,
    readonly authority: SandboxAuthority,
  ) {
    this.routes = tenantRoutes(tenant);
  }

  static async start(tenant = new SandboxTenant()): Promise<Sandbox> {
    const tls = sandboxTls();
    // The handler needs the Sandbox, and the Sandbox needs the listening server's port: bind late.
    const handler: { handle?: (req: IncomingMessage, res: ServerResponse) => Promise<void> } = {};
    const server = createServer({ key: readFileSync(tls.keyPath), cert: readFileSync(tls.certPath) }, (req, res) => void handler.handle?.(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const origin = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const sandbox = new Sandbox(tenant, server, origin, await SandboxAuthority.create(origin));
    handler.handle = (req, res) => sandbox.handle(req, res);
    return sandbox;
  }

  /** App settings that point the engine (its token validation, DefaultAzureCredential, every client) at this sandbox. */
  settings(): Record<string, string> {
    return {
      AZURE_TENANT_ID: SANDBOX_TENANT_ID,
      AZURE_AUTHORITY_HOST: this.origin,
      RESPONDER_AUDIENCE: SANDBOX_AUDIENCE,
      GRAPH_ENDPOINT: this.origin,
      DEFENDER_ENDPOINT: this.origin,
      ARM_ENDPOINT: this.origin,
      RESPONDER_SENTINEL_WORKSPACES: SAMPLE_WORKSPACE_ID,
      IDENTITY_ENDPOINT: `${this.origin}/msi/token`,
      IDENTITY_HEADER: this.identityHeader,
    };
  }

  /** A freshly seeded tenant behind the same server and tokens, and no armed faults: between tests. */
  reset(): void {
    const fresh = new SandboxTenant();
    const tenant = this.tenant;
    for (const key of ['users', 'riskyUsers', 'machines', 'incidents'] as const) {
      tenant[key].clear();
      for (const [id, value] of fresh[key] as Map<string, never>) (tenant[key] as Map<string, never>).set(id, value);
    }
    tenant.machineActions.length = 0;
    tenant.roleAssignments.splice(0, tenant.roleAssignments.length, ...fresh.roleAssignments);
    tenant.roleEligibilities.splice(0, tenant.roleEligibilities.length, ...fresh.roleEligibilities);
    tenant.roleRequests.splice(0, tenant.roleRequests.length, ...fresh.roleRequests);
    tenant.activationApproval.clear();
    for (const [role, required] of fresh.activationApproval) tenant.activationApproval.set(role, required);
    tenant.calls.length = 0;
    tenant.actionCompletionMs = fresh.actionCompletionMs;
    tenant.defenderQuotas = { ...fresh.defenderQuotas };
    tenant.defenderAcceptsOr = fresh.defenderAcceptsOr;
    tenant.defenderPageSize = fresh.defenderPageSize;
    tenant.graphPageSize = fresh.graphPageSize;
    tenant.armPageSize = fresh.armPageSize;
    tenant.graphWriteQuota = { ...fresh.graphWriteQuota };
    tenant.idProtectionQuota = { ...fresh.idProtectionQuota };
    tenant.managedIdentityRoles = [...fresh.managedIdentityRoles];
    tenant.now = fresh.now;
    this.faults.clear();
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.origin);
    const method = req.method ?? 'GET';
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');

    const fault = this.faults.take(method, url.pathname);
    if (fault?.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
    if (fault?.drop) {
      this.tenant.calls.push({ method, path: url.pathname, query: url.search, status: 0, at: Date.now() });
      req.socket.destroy();
      return;
    }
    const answer = fault?.status ? { status: fault.status, body: fault.body, headers: fault.headers } : await this.answer(req, method, url, text);
    this.tenant.calls.push({ method, path: url.pathname, query: url.search, status: answer.status, at: Date.now() });
    const headers: Record<string, string> = { ...answer.headers };
    if (answer.body !== undefined) headers['content-type'] = 'application/json';
    res.writeHead(answer.status, headers).end(answer.body === undefined ? undefined : JSON.stringify(answer.body));
  }

  private async answer(req: IncomingMessage, method: string, url: URL, text: string): Promise<SandboxAnswer> {
    if (url.pathname === '/msi/token') return this.mintToken(req, url);
    if (url.pathname === `/${SANDBOX_TENANT_ID}/discovery/v2.0/keys`) return { status: 200, body: this.authority.jwks };
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    const issued = bearer === undefined ? undefined : this.tokens.get(bearer);
    if (issued === undefined) return apiError(401, 'InvalidAuthenticationToken', 'Access token is empty or invalid.');
    const { audience, roles } = issued;
    // Graph, Defender and ARM share the sandbox's origin, so a token is good for them all, and for nothing else.
    if (audience !== this.origin)
      return apiError(401, 'InvalidAuthenticationToken', `Access token validation failure: audience ${audience} is not ${this.origin}.`);
    const refused = forbidden(method, url.pathname, roles);
    if (refused) return refused;
    let body: unknown;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      return apiError(400, 'BadRequest', 'Unable to read JSON request payload.');
    }
    const request: SandboxRequest = { method, path: url.pathname, query: url.searchParams, body, audience, origin: this.origin };
    for (const route of this.routes) {
      const answer = route(request);
      if (answer) return answer;
    }
    return apiError(404, 'NotFound', `the sandbox does not serve ${method} ${url.pathname}`);
  }

  /** App Service managed identity (api-version 2019-08-01): GET ?resource=…, header X-IDENTITY-HEADER. */
  private async mintToken(req: IncomingMessage, url: URL): Promise<SandboxAnswer> {
    if (req.headers['x-identity-header'] !== this.identityHeader) return { status: 401, body: { error: 'invalid identity header' } };
    const resource = url.searchParams.get('resource');
    if (!resource) return { status: 400, body: { error: 'resource is required' } };
    const token = await this.identityToken(resource, this.tenant.managedIdentityRoles);
    const expiresOn = Math.floor(Date.now() / 1000) + 3600;
    return { status: 200, body: { access_token: token, expires_on: String(expiresOn), resource, token_type: 'Bearer', client_id: 'sandbox-managed-identity' } };
  }

  /**
   * A managed identity's token for `resource` carrying `roles`, good for this sandbox's APIs: what `/msi/token` answers
   * with the tenant's `managedIdentityRoles`, and what a test's credential asks for an identity holding other roles.
   */
  async identityToken(resource: string, roles: readonly string[]): Promise<string> {
    // A signed JWT carrying the identity's app roles, like Entra's: the permission preflight reads them. Shaped as a
    // v1 token, as a managed identity's are (asked for by `resource`): sts.windows.net issuer, nbf. Azurite checks both.
    const token = await this.authority.token([...roles], {
      aud: new URL(resource).origin,
      iss: `https://sts.windows.net/${SANDBOX_TENANT_ID}/`,
      ver: '1.0',
      nbf: Math.floor(Date.now() / 1000) - 60,
      oid: 'sandbox-managed-identity',
      jti: randomBytes(8).toString('hex'),
    });
    this.tokens.set(token, { audience: new URL(resource).origin, roles: [...roles] });
    return token;
  }
}
