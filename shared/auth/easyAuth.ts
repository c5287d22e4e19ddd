import { AuthError, type Caller } from './caller';

const OID_CLAIMS = ['http://schemas.microsoft.com/identity/claims/objectidentifier', 'oid'];
const TID_CLAIMS = ['http://schemas.microsoft.com/identity/claims/tenantid', 'tid'];
const NAME_CLAIMS = ['preferred_username', 'upn', 'name', 'http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn', 'appid', 'azp'];

/**
 * App Service Authentication ("Easy Auth") validates the token in front of the app and passes the principal in
 * X-MS-CLIENT-PRINCIPAL (base64 JSON). It does not check app roles: we do. Only trusted when RESPONDER_AUTH=easyauth,
 * because without Easy Auth in front, anyone can send that header.
 */
export function callerFromEasyAuth(header: string, tenantId: string | undefined): Caller {
  let principal: { claims?: Array<{ typ?: unknown; val?: unknown }>; role_typ?: unknown };
  try {
    principal = JSON.parse(Buffer.from(header, 'base64').toString('utf8'));
  } catch {
    throw new AuthError(401, 'X-MS-CLIENT-PRINCIPAL is not base64-encoded JSON');
  }
  const claims = Array.isArray(principal?.claims) ? principal.claims : [];
  const values = (types: string[]): string[] =>
    claims.filter((c) => typeof c.typ === 'string' && types.includes(c.typ) && typeof c.val === 'string').map((c) => c.val as string);
  const roleType = typeof principal.role_typ === 'string' ? principal.role_typ : 'roles';
  const objectId = values(OID_CLAIMS)[0];
  if (!objectId) throw new AuthError(401, 'the Easy Auth principal has no object id claim');
  const tid = values(TID_CLAIMS)[0];
  if (tenantId && tid !== tenantId) throw new AuthError(401, 'the Easy Auth principal belongs to another tenant');
  return {
    objectId,
    name: values(NAME_CLAIMS)[0] ?? objectId,
    roles: values([roleType, 'roles']),
    tenantId: tid,
    kind: values(['scp', 'http://schemas.microsoft.com/identity/claims/scope']).length ? 'user' : 'app',
    via: 'easyauth',
  };
}
