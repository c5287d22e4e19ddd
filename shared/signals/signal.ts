/**
 * The one shape every input becomes. Sentinel incidents and alerts today; ID Protection risk records, analysts'
 * manual requests and sweep findings later: the policy module only ever sees a Signal.
 */

export const SIGNAL_SOURCES = ['incident', 'alert', 'risk', 'manual', 'sweep'] as const;
export type SignalSource = (typeof SIGNAL_SOURCES)[number];

/** The label of the privilegeDrift sweep's findings: a role the engine removed, held again without a new approval. */
export const PRIVILEGE_DRIFT_LABEL = 'privilegeDrift';

/**
 * Labels of sweep findings that are first a record, not a verdict: only a rule that names the label acts on such a
 * finding, so rules written for incidents and risk (a risky admin, a high-risk user) never catch it by their other
 * conditions. Only the engine's own sweeps set them: an incident labelled so is judged as any other.
 */
export const NAMED_ONLY_LABELS: ReadonlySet<string> = new Set([PRIVILEGE_DRIFT_LABEL.toLowerCase()]);

export const SEVERITIES = ['Informational', 'Low', 'Medium', 'High'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** ID Protection user risk levels (Graph riskyUser.riskLevel). `hidden` and `none` carry no signal. */
export const USER_RISK_LEVELS = ['none', 'low', 'medium', 'high', 'hidden'] as const;
export type UserRiskLevel = (typeof USER_RISK_LEVELS)[number];

/** Defender for Endpoint machine.riskScore values. */
export const DEVICE_RISK_LEVELS = ['None', 'Informational', 'Low', 'Medium', 'High'] as const;
export type DeviceRiskLevel = (typeof DEVICE_RISK_LEVELS)[number];

/** The entity data enrichment reads, by name: who the entity is, and what rules, guardrails and protection read of it. */
export const ENTITY_DATA = ['identity', 'userRisk', 'privileged', 'groups', 'deviceRisk', 'deviceTags'] as const;
export type EntityData = (typeof ENTITY_DATA)[number];

/**
 * Entity data enrichment could not read for a passing reason (a spent budget, a 429, a 5xx, no answer): unknown for
 * now, not for good. A verdict that reads it waits for it instead of deciding without it.
 */
export interface UnavailableData {
  data: EntityData;
  /** What the read met: `paced by the engine: the defender budget (100 per 60 s) is spent`, `defender 503 …`. */
  why: string;
  /** When the read may succeed, where the failure said (the budget's refill, a Retry-After). */
  retryAfterMs?: number;
}

export interface AccountEntity {
  kind: 'account';
  /** Entra object id: the preferred, stable target (a UPN built from accountName@upnSuffix is often wrong). */
  aadUserId?: string;
  /** `accountName@upnSuffix` when both are present, lower-cased. */
  upn?: string;
  accountName?: string;
  upnSuffix?: string;
  displayName?: string;
  aadTenantId?: string;
  sid?: string;
  ntDomain?: string;
  /** Filled by enrichment (ID Protection). Undefined means unknown, never "no risk". */
  userRisk?: UserRiskLevel;
  /** Filled by enrichment (PIM / directory roles). Undefined means unknown. */
  privileged?: boolean;
  /** Group object ids, filled by enrichment. Undefined means unknown. */
  groupIds?: string[];
  /** Who the account is, as the directory says: filled by enrichment. Undefined means not (yet) verified. */
  verified?: VerifiedUser;
  /** Set by enrichment when the directory has no such user: nothing can be done to them. */
  notFound?: string;
  /** Set by enrichment when it did not read the directory for this entity, and why: its actions are held. */
  notRead?: string;
  /** An identifier of the entity the payload gave but that could not be read, and why: its actions are held. */
  malformed?: string;
  /** Data that is unknown for now (enrichment met a passing failure): verdicts that read it wait. */
  unavailable?: UnavailableData[];
  /**
   * What other mentions of the entity (alerts repeat entities) called it, where that differs from the first mention:
   * each is compared with the directory's record like the first.
   */
  otherMentions?: Array<Pick<AccountEntity, 'aadUserId' | 'upn' | 'accountName' | 'sid'>>;
}

export interface HostEntity {
  kind: 'host';
  /** Defender for Endpoint machine id (40 hex chars): the preferred target. */
  mdatpDeviceId?: string;
  aadDeviceId?: string;
  /** Fully qualified name, lower-cased (`hostName.dnsDomain` or additionalData.FQDN). */
  fqdn?: string;
  hostName?: string;
  dnsDomain?: string;
  netBiosName?: string;
  azureId?: string;
  osFamily?: string;
  /** Defender risk score, from the alert's additionalData or from enrichment. Undefined means unknown. */
  deviceRisk?: DeviceRiskLevel;
  /** Defender machine tags, filled by enrichment. Undefined means unknown. */
  tags?: string[];
  /** Defender exposure level (None, Low, Medium, High), filled by enrichment; carried for analysts. */
  exposure?: string;
  /** Which device it is, as Defender says: filled by enrichment. Undefined means not (yet) verified. */
  verified?: VerifiedDevice;
  /** Set by enrichment when Defender has no such device: nothing can be done to it. */
  notFound?: string;
  /** Set by enrichment when it did not read Defender for this device, and why: its actions are held. */
  notRead?: string;
  /** An identifier of the device the payload gave but that could not be read, and why: its actions are held. */
  malformed?: string;
  /** Data that is unknown for now (enrichment met a passing failure): verdicts that read it wait. */
  unavailable?: UnavailableData[];
  /** What other mentions of the device called it, where that differs from the first mention. */
  otherMentions?: Array<Pick<HostEntity, 'mdatpDeviceId' | 'aadDeviceId' | 'fqdn' | 'hostName' | 'netBiosName'>>;
}

/**
 * A user as the directory (Graph) describes it: the identity that protection is checked against and that actions act
 * on. Payload identifiers are claims; these are the answers. On-premises values are present for synchronized users.
 */
export interface VerifiedUser {
  id: string;
  upn: string;
  /** The other names the directory gives the user, lower-cased: what a payload may call them by. */
  onPremisesUpn?: string;
  samAccountName?: string;
  sid?: string;
  mail?: string;
  guest: boolean;
}

/** A device as Defender for Endpoint describes its live machine record. */
export interface VerifiedDevice {
  id: string;
  /** Lower-cased. */
  computerDnsName: string;
  aadDeviceId?: string;
  /** Undefined when Defender gave no list of tags: unknown. */
  tags?: string[];
  /** Set when the id the action named is a stale record Defender merged into this one. */
  mergedFrom?: string;
  /** The ids of the device's other records seen while resolving it (stale ones): a protected list may name those. */
  otherRecords?: string[];
  /** Other live devices that report the same name: a device names itself, so a protected name is then no proof. */
  namesakes?: string[];
}

/** Any other entity kind (Ip, Url, File, FileHash, Mailbox, …, and kinds we have never seen): carried, never dropped. */
export interface OtherEntity {
  kind: 'other';
  /** The kind as the payload spelled it, lower-cased (`ip`, `url`, `filehash`, `mailbox`, `somethingnew`). */
  sourceKind: string;
  /** The one value that identifies it, where the kind has one (address, url, hash, file name, mailbox). */
  value?: string;
  properties: Record<string, unknown>;
}

export type Entity = AccountEntity | HostEntity | OtherEntity;

export interface IncidentRef {
  /** ARM id of the incident: the key for comments and updates, and the subject of idempotency keys. */
  armId: string;
  /** The incident's GUID name (last segment of the ARM id). */
  name: string;
  number?: number;
  url?: string;
  subscriptionId: string;
  resourceGroup: string;
  workspaceName: string;
  /** Create or Update, when the payload came from an automation rule. */
  eventType?: string;
}

/**
 * Where a risk signal came from: its ID Protection record as read (category, time, and the properties the normalizer
 * reads, each bounded), so a later look can read it again as a look at an incident reads the incident from ARM.
 */
export interface RiskRef {
  category: 'RiskyUsers' | 'UserRiskEvents';
  time?: string;
  properties: Record<string, string | boolean>;
}

export interface Signal {
  source: SignalSource;
  /**
   * What the actions are about: the incident ARM id (lower-cased: ARM ids are case-insensitive), the alert id,
   * the request id. Part of every idempotency key, so replays of the same subject never duplicate an action.
   */
  subject: string;
  title: string;
  severity: Severity;
  status?: string;
  incident?: IncidentRef;
  /** A risk record's own reference (source risk, or sweep reading ID Protection). */
  risk?: RiskRef;
  tactics: string[];
  techniques: string[];
  products: string[];
  labels: string[];
  entities: Entity[];
  /** Things the normalizer noticed but tolerated (an entity with no usable identifier, a duplicate entity). */
  notes: string[];
}
