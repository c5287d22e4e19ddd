import { hash } from 'node:crypto';
import type { ActionKind } from './catalogue';

/**
 * The idempotency keys of one subject's actions: each a hash of (subject, kind, target). The subject is the incident
 * ARM id (or the request or finding id), so every delivery of the same incident — Sentinel fires on create and on
 * each update — yields the same key for the same action on the same target. It is the ledger key and the base of
 * every Service Bus MessageId; 32 hex characters keep it valid as a Table RowKey and leave room for derived retry ids.
 *
 * SHA-256, not a faster non-cryptographic hash: whoever shapes incident entities must not be able to craft a target
 * whose key collides with another action's and so make the engine skip it as "already done". One hash per key, of
 * the whole text: hashing the subject once first saves less per key than that extra hash costs a small incident.
 */
export function idempotencyKeys(subject: string): (kind: ActionKind, targetKey: string) => string {
  // crypto.hash (one shot) costs half of createHash per key.
  return (kind, targetKey) => hash('sha256', `${subject}\n${kind}\n${targetKey}`, 'hex').slice(0, 32);
}
