import { describe, expect, it } from 'vitest';
import { infraTexts } from './bicep';

// What a secret or a way to one looks like in a template or a script. Comments may name them (to say why not).
const SECRETS: Array<[string, RegExp]> = [
  ['a key listed at deploy time', /\blist(Keys|Secrets|ConnectionStrings|CallbackUrl|AccountSas|ServiceSas)\s*\(/i],
  ['a connection string', /(AccountKey|SharedAccessKey|SharedAccessSignature|InstrumentationKey)\s*=/i],
  ['a SAS or function key in a URL', /[?&](sig|code|sv)=/i],
  ['a client secret or password', /passwordCredentials|client[_-]?secret|--password\b|clientSecret/i],
  ['a secure parameter (no secret is needed anywhere)', /@secure\(\)/],
];

const code = (path: string, text: string) =>
  text
    .split('\n')
    .filter((line) => !(path.endsWith('.sh') ? /^\s*#/ : /^\s*\/\//).test(line))
    // The Logic Apps trigger registers its own callback with Sentinel: `@{listCallbackUrl()}` is an expression the
    // workflow evaluates at run time, not a key in the template.
    .map((line) => line.replace("'@{listCallbackUrl()}'", ''))
    .join('\n');

describe('infra/ holds no secrets', () => {
  it('no template, script or setting lists keys, carries a connection string, a SAS, a function key or a password', () => {
    const files = infraTexts();
    expect(files.length).toBeGreaterThan(0);
    for (const { path, text } of files) {
      for (const [what, pattern] of SECRETS) expect(code(path, text), `${path}: ${what}`).not.toMatch(pattern);
    }
  });
});
