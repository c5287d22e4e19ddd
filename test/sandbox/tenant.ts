/**
 * The sandbox tenant's state: the users, ID Protection records and call log the emulated APIs read and write.
 * Seeded with the demo identities the sample incident and alert name, a break-glass account, an administrator and a
 * guest. Tests read it to assert what really happened (a side effect happened once, an account is disabled).
 */
export interface SandboxUser {
  id: string;
  userPrincipalName: string;
  displayName: string;
  accountEnabled: boolean;
  userType: 'Member' | 'Guest';
  /** Holds an Entra role high enough that an app-only caller cannot disable it (Graph answers 403). */
  privileged: boolean;
  /** revokeSignInSessions calls received. */
  sessionRevocations: number;
}

export interface SandboxRiskyUser {
  id: string;
  userPrincipalName: string;
  riskLevel: 'low' | 'medium' | 'high' | 'hidden' | 'none';
  riskState: 'atRisk' | 'confirmedCompromised' | 'remediated' | 'dismissed' | 'none';
  riskDetail: string;
  riskLastUpdatedDateTime: string;
  isProcessing: boolean;
  isDeleted: boolean;
}

export interface CallRecord {
  method: string;
  path: string;
  status: number;
}

export const DEMO = {
  adele: '6e7b768e-07e2-4810-8459-485f84f8f204',
  jsmith: '3c5a1e8e-2f62-4d8b-9c11-7a0d3b4c5e6f',
  megan: '2b3c4d5e-0000-4000-8000-000000000042',
  breakglass: '99999999-9999-4999-8999-999999999999',
  guest: '5a5a5a5a-0000-4000-8000-00000000beef',
} as const;

export class SandboxTenant {
  readonly users = new Map<string, SandboxUser>();
  readonly riskyUsers = new Map<string, SandboxRiskyUser>();
  readonly calls: CallRecord[] = [];

  constructor(seed = true) {
    if (!seed) return;
    this.addUser({ id: DEMO.adele, userPrincipalName: 'adele.vance@contoso.com', displayName: 'Adele Vance' });
    this.addUser({ id: DEMO.jsmith, userPrincipalName: 'jsmith@contoso.com', displayName: 'John Smith' });
    this.addUser({ id: DEMO.megan, userPrincipalName: 'megan.bowen@contoso.com', displayName: 'Megan Bowen (Global Administrator)', privileged: true });
    this.addUser({ id: DEMO.breakglass, userPrincipalName: 'breakglass1@contoso.com', displayName: 'Emergency access 1', privileged: true });
    this.addUser({ id: DEMO.guest, userPrincipalName: 'partner_fabrikam.com#EXT#@contoso.onmicrosoft.com', displayName: 'Partner guest', userType: 'Guest' });
    this.setRisk(DEMO.adele, 'high');
    this.setRisk(DEMO.megan, 'medium');
  }

  addUser(user: Partial<SandboxUser> & Pick<SandboxUser, 'id' | 'userPrincipalName' | 'displayName'>): SandboxUser {
    const full: SandboxUser = { accountEnabled: true, userType: 'Member', privileged: false, sessionRevocations: 0, ...user };
    this.users.set(full.id, full);
    return full;
  }

  setRisk(id: string, riskLevel: SandboxRiskyUser['riskLevel'], riskState: SandboxRiskyUser['riskState'] = 'atRisk'): void {
    const user = this.users.get(id);
    if (!user) throw new Error(`no sandbox user ${id}`);
    this.riskyUsers.set(id, {
      id,
      userPrincipalName: user.userPrincipalName,
      riskLevel,
      riskState,
      riskDetail: 'none',
      riskLastUpdatedDateTime: new Date().toISOString(),
      isProcessing: false,
      isDeleted: false,
    });
  }

  /** A user by object id or UPN (Graph accepts either in /users/{id}). */
  findUser(idOrUpn: string): SandboxUser | undefined {
    const key = idOrUpn.toLowerCase();
    return this.users.get(key) ?? [...this.users.values()].find((u) => u.userPrincipalName.toLowerCase() === key);
  }

  /** How many calls matched, e.g. `count('PATCH', /\/users\//)`: to assert a side effect happened once. */
  count(method: string, path: RegExp): number {
    return this.calls.filter((c) => c.method === method && path.test(c.path) && c.status < 400).length;
  }
}
