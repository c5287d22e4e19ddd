import { ACTIONS } from '../actions/catalogue';
import { targetLabel } from '../actions/target';
import type { Decision } from './decision';
import { lackedData } from './unavailable';

/** A decision as an analyst reads it: score and where it came from, each rule's verdict, what happens and what not. */
export function explainDecision(decision: Decision): string {
  const out: string[] = [];
  out.push(`${decision.title}`);
  out.push(`  ${decision.source} ${decision.subject}`);
  out.push(`  severity ${decision.severity} · policy ${decision.policy.origin} (${decision.policy.digest}) · mode ${decision.mode}`);
  out.push('');
  out.push(`Risk score ${decision.score.total}/100`);
  if (decision.score.factors.length === 0) out.push('  (no factor applies)');
  for (const f of decision.score.factors) out.push(`  +${String(f.points).padEnd(3)} ${f.factor} ${f.value}`);
  out.push('');
  out.push('Rules');
  for (const r of decision.rules)
    out.push(`  ${r.matched ? '✓' : r.waiting ? '…' : '·'} ${r.ruleId}${r.mode === 'audit' ? ' [audit]' : ''}: ${r.explanation.join(', ')}`);
  out.push('');
  out.push(decision.actions.length ? 'Will do' : 'Will do: nothing');
  for (const a of decision.actions) {
    const params = Object.entries(a.params)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ');
    out.push(`  ${a.kind}${params ? ` (${params})` : ''} → ${targetLabel(a.target)}${a.mode === 'audit' ? ' [audit: recorded, no write]' : ''}`);
    out.push(`      ${ACTIONS[a.kind].verb}; rule ${a.ruleId}; key ${a.idempotencyKey}`);
  }
  if (decision.skipped.length) {
    out.push('');
    out.push('Will not do');
    for (const s of decision.skipped) out.push(`  ${s.kind}${s.target ? ` → ${targetLabel(s.target)}` : ''}: ${s.reason} — ${s.detail} (rule ${s.ruleId})`);
  }
  if (decision.waiting.length) {
    out.push('');
    out.push(
      `Waiting for data${decision.lookAgainAt ? ` (evaluated again at ${decision.lookAgainAt}; held for a human if still unavailable on the last look)` : ''}`,
    );
    for (const w of decision.waiting) out.push(`  ${w.kind} → ${targetLabel(w.target)}: ${lackedData(w)} unavailable for now — ${w.why} (rule ${w.ruleId})`);
  }
  if (decision.notes.length) {
    out.push('');
    out.push('Notes');
    for (const n of decision.notes) out.push(`  - ${n}`);
  }
  return out.join('\n');
}
