import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';
import { REPOSITORY_ROOT } from '../cli/repositoryRoot';

/**
 * The import rules docs/architecture.md states, checked on the sources: a rule broken here is either a mistake in the
 * change or a change of design, and then the document changes with it.
 */
interface Import {
  from: string;
  to: string;
}

function sources(folder: string): string[] {
  const dir = path.join(REPOSITORY_ROOT, folder);
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const relative = path.posix.join(folder, entry.name);
    if (entry.isDirectory()) return sources(relative);
    return /\.m?ts$/.test(entry.name) && !entry.name.endsWith('.d.ts') ? [relative] : [];
  });
}

/**
 * Every import of each file — static, side-effect, dynamic, require — as TypeScript's own scanner finds them:
 * repository-relative paths for ours, the package name for the rest.
 */
function importsOf(folders: string[]): Import[] {
  const found: Import[] = [];
  for (const file of folders.flatMap(sources)) {
    const text = readFileSync(path.join(REPOSITORY_ROOT, file), 'utf8');
    for (const { fileName: spec } of ts.preProcessFile(text, true, true).importedFiles) {
      const to = spec.startsWith('.') ? path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.m?js$/, '') : spec;
      found.push({ from: file, to });
    }
  }
  return found;
}

const within = (prefix: string) => (i: Import) => i.to === prefix || i.to.startsWith(`${prefix}/`);
const breaking = (imports: Import[], allowed: (i: Import) => boolean) => imports.filter((i) => !allowed(i)).map((i) => `${i.from} -> ${i.to}`);

describe('what each folder may import (docs/architecture.md)', () => {
  it('signals: only themselves and the shared basics; no I/O', () => {
    const allowed = ['shared/signals', 'shared/errors', 'shared/limits', 'shared/json'];
    expect(breaking(importsOf(['shared/signals']), (i) => i.to.startsWith('node:') || allowed.some((a) => within(a)(i)))).toEqual([]);
  });

  it('policy: signals, the action vocabulary, zod and yaml; only load.ts reads a file', () => {
    const allowed = [
      'shared/policy',
      'shared/signals',
      'shared/errors',
      'shared/limits',
      'shared/json',
      'shared/actions/catalogue',
      'shared/actions/target',
      'shared/actions/idempotency',
    ];
    const packages = ['zod', 'yaml', 'node:crypto'];
    const readsFiles = (i: Import) => i.from === 'shared/policy/load.ts' && (i.to === 'node:fs' || i.to === 'node:path');
    expect(breaking(importsOf(['shared/policy']), (i) => packages.includes(i.to) || readsFiles(i) || allowed.some((a) => within(a)(i)))).toEqual([]);
  });

  it('the scanner sees every form of import', () => {
    const forms = ["import '../x';", 'import "../x";', "const y = require('../x');", "void import('../x');", "export * from '../x';"];
    for (const form of forms) expect(ts.preProcessFile(form, true, true).importedFiles.map((f) => f.fileName)).toEqual(['../x']);
  });

  it("the action lifecycle (the worker's rules) is pure: types, and the retry policy", () => {
    const lifecycle = importsOf(['shared/actions']).filter((i) => i.from === 'shared/actions/lifecycle.ts');
    expect(lifecycle.length).toBeGreaterThan(0);
    const text = readFileSync(path.join(REPOSITORY_ROOT, 'shared/actions/lifecycle.ts'), 'utf8');
    const valueImports = [...text.matchAll(/^import\s+(type\s+)?[^;]*?from\s+'([^']+)';/gm)].filter((m) => !m[1]).map((m) => m[2]);
    expect(valueImports).toEqual(['./retryPolicy']);
  });

  it('the engine (shared/) never reaches into the host, the CLI, the sandbox or the tests', () => {
    const outside = ['functions', 'cli', 'sandbox', 'test', 'bench'];
    expect(breaking(importsOf(['shared']), (i) => !outside.some((o) => within(o)(i)))).toEqual([]);
  });

  it('only shared/azure/ and the local host talk to @azure/functions', () => {
    const users = importsOf(['shared', 'functions', 'cli']).filter((i) => i.to === '@azure/functions');
    expect(breaking(users, (i) => i.from.startsWith('shared/azure/') || i.from.startsWith('cli/'))).toEqual([]);
  });

  it('function entry points are thin: they import the engine and nothing of each other, the CLI or the sandbox', () => {
    expect(breaking(importsOf(['functions']), (i) => within('shared')(i) || !i.to.includes('/') || i.to.startsWith('@'))).toEqual([]);
  });

  it('the sandbox is an independent tenant: it does not import the engine it stands in front of', () => {
    expect(breaking(importsOf(['sandbox']), (i) => within('sandbox')(i) || !i.to.includes('/') || i.to.startsWith('@'))).toEqual([]);
  });

  it('product code never imports test code', () => {
    expect(breaking(importsOf(['shared', 'functions', 'cli', 'sandbox']), (i) => !within('test')(i))).toEqual([]);
  });

  it('cold start: what the entry points load at import takes in no schema, YAML, logging or telemetry package', () => {
    // These load on first use, by dynamic import or a require inside a function (docs/performance.md).
    const lazy = /^(zod|yaml|pino|@azure\/identity|@azure\/monitor-opentelemetry-exporter|@opentelemetry\/.*)$/;
    const reached = coldPath(sources('functions'));
    expect([...reached].filter((spec) => lazy.test(spec))).toEqual([]);
    expect(reached.has('shared/runtime')).toBe(true); // the walk follows our own imports
  });
});

/** Every module the files load when imported: static imports that carry values, followed through our own files. */
function coldPath(entries: string[]): Set<string> {
  const reached = new Set<string>();
  const pending = [...entries];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    const source = ts.createSourceFile(file, readFileSync(path.join(REPOSITORY_ROOT, file), 'utf8'), ts.ScriptTarget.Latest);
    for (const statement of source.statements) {
      const loads =
        (ts.isImportDeclaration(statement) &&
          !statement.importClause?.isTypeOnly &&
          !(
            statement.importClause?.namedBindings &&
            ts.isNamedImports(statement.importClause.namedBindings) &&
            !statement.importClause.name &&
            statement.importClause.namedBindings.elements.every((e) => e.isTypeOnly)
          )) ||
        (ts.isExportDeclaration(statement) && statement.moduleSpecifier !== undefined && !statement.isTypeOnly);
      if (!loads || !ts.isStringLiteral(statement.moduleSpecifier!)) continue;
      const spec = statement.moduleSpecifier.text;
      const to = spec.startsWith('.') ? path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.m?js$/, '') : spec;
      if (reached.has(to)) continue;
      reached.add(to);
      if (spec.startsWith('.')) pending.push(`${to}.ts`);
    }
  }
  return reached;
}
