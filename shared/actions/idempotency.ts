import { hash } from 'node:crypto';
import { isGuid, isMdeDeviceId } from '../signals/identifiers';
import type { ActionKind } from './catalogue';

/**
 * The idempotency key of an action: `<subject digest>.<kind>.<target>`, for example
 * `4f0c2a9be31d77a0c5e1f2d3.revokeSessions.6e7b768e-07e2-4810-8459-485f84f8f204`.
 * - subject digest: the first 24 hex characters (96 bits) of SHA-256 of the subject, the incident ARM id (or the
 *   alert, request or finding id). Every delivery of the same incident — Sentinel fires on create and on each
 *   update — yields the same key for the same action on the same target.
 * - kind: the action.
 * - target: the target id (`targetId`) itself when it is an Entra object or device id (a GUID) or a Defender machine
 *   id (40 hex); otherwise (a UPN, an FQDN) `h` and 32 hex characters of its SHA-256.
 *
 * It is the ledger key (a valid Table RowKey) and the base of every Service Bus MessageId: at most 87 characters,
 * leaving room for the derived retry suffixes under the broker's 128. Distinct targets never share a key: ids are
 * carried as they are, and the rest are told apart by SHA-256, so nobody who shapes incident entities can craft a
 * target whose key collides with another action's and make the engine skip it as "already done". The shape also
 * lets a reader of the ledger or the queue see at a glance what an action is and on whom. It replaced SHA-256 of the
 * whole (subject, kind, target) per action: that hash was two thirds of the time a decision on a large incident took.
 */
export function idempotencyKeys(subject: string): (kind: ActionKind, targetPart: string) => string {
  const subjectDigest = hash('sha256', subject, 'hex').slice(0, 24);
  return (kind, targetPart) => `${subjectDigest}.${kind}.${targetPart}`;
}

/** The target's part of its keys, from its lower-cased `targetId`: computed once per target, used for each action. */
export function targetKeyPart(targetId: string): string {
  return isGuid(targetId) || isMdeDeviceId(targetId) ? targetId : `h${hash('sha256', targetId, 'hex').slice(0, 32)}`;
}

/** What every idempotency key looks like; commands whose key does not are refused as poison. */
export const IDEMPOTENCY_KEY_PATTERN =
  /^[0-9a-f]{24}\.[A-Za-z]{1,32}\.(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{40}|h[0-9a-f]{32})$/;
