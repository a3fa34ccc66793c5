import { describe, expect, it } from 'vitest';
import { compileLabelSelector, formatLabelSelector } from './labels.js';

describe('label selectors', () => {
  const labels = { app: 'bank', tier: 'db', 'violin.dev/snapshot': 'nightly' };

  it.each([
    ['', true],
    ['app=bank', true],
    ['app==bank', true],
    ['app=web', false],
    ['app!=web', true],
    ['missing!=x', true],
    ['violin.dev/snapshot=nightly,tier=db', true],
    ['violin.dev/snapshot=nightly,tier=web', false],
    ['tier', true],
    ['!tier', false],
    ['!missing', true],
    ['tier in (db, cache)', true],
    ['tier in (web)', false],
    ['tier notin (web)', true],
    ['missing notin (web)', true],
    ['app=bank, tier in (db,cache), !missing', true],
  ])('%s → %s', (selector, expected) => {
    expect(compileLabelSelector(selector)(labels)).toBe(expected);
  });

  it('treats a map as equality requirements and matches objects without labels only when empty', () => {
    expect(compileLabelSelector({ app: 'bank', tier: 'db' })(labels)).toBe(true);
    expect(compileLabelSelector({ app: 'bank', tier: 'web' })(labels)).toBe(false);
    expect(compileLabelSelector({})(undefined)).toBe(true);
    expect(compileLabelSelector({ app: 'bank' })(undefined)).toBe(false);
  });

  it('refuses bad syntax with the selector in the message', () => {
    expect(() => compileLabelSelector('app=bank,=x')).toThrow(/invalid label selector 'app=bank,=x'.*'=x'/);
    expect(() => compileLabelSelector('a in b')).toThrow(/invalid label selector/);
  });

  it('formats maps for the API server', () => {
    expect(formatLabelSelector({ a: 'b', c: 'd' })).toBe('a=b,c=d');
    expect(formatLabelSelector('a!=b')).toBe('a!=b');
  });
});
