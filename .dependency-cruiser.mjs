// The project's import rules, checked by `make lint` (dependency-cruiser) and
// shown to fail where they must by test/unit/lint/import-rules.test.ts.
//
// Type-only imports count (tsPreCompilationDeps): a cycle of `import type` has no
// effect at run time, but it still ties two files into one unit that cannot be
// read, tested or moved alone; ESLint's import plugins skip such cycles, which is
// why this is not an ESLint rule.

/** @type {import('dependency-cruiser').IForbiddenRuleType[]} */
export const importRules = [
  {
    name: 'no-cycle',
    comment: 'No import cycles, type-only imports included.',
    severity: 'error',
    from: {},
    to: { circular: true },
  },
  {
    name: 'src-alone',
    comment:
      'src/ is the product and compiles alone (the image copies only src/): it never imports the lab, the benchmarks or the tests.',
    severity: 'error',
    from: { path: '^src/' },
    to: { path: '^(lab|bench|test)/' },
  },
  {
    name: 'tools-without-tests',
    comment: 'The lab and the benchmarks do not depend on the tests.',
    severity: 'error',
    from: { path: '^(lab|bench)/' },
    to: { path: '^test/' },
  },
  {
    name: 'resolvable',
    comment: 'A relative import that does not resolve would hide its edges from the rules above.',
    severity: 'error',
    from: {},
    to: { couldNotResolve: true, path: '^[.][.]?/' },
  },
];

/** How the sources are read: type-only imports kept; an ESM `.js` specifier that names a `.ts` file resolves to it. */
export const importRuleOptions = {
  tsPreCompilationDeps: true,
  doNotFollow: { path: 'node_modules' },
  exclude: { path: '^(node_modules|dist|out)/|^test/fixtures/' },
  enhancedResolveOptions: {
    extensions: ['.ts', '.js', '.mjs'],
  },
};

/** @type {import('dependency-cruiser').IConfiguration} */
export default { forbidden: importRules, options: importRuleOptions };
