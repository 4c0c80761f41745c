/**
 * The house rules, checked by `npm test` (npm run deps). A role never imports another role:
 * shared pieces live below the roles. Only src/mq/ talks to the broker. Lower layers never reach
 * up into the roles or the wiring. No import cycles.
 */
module.exports = {
  forbidden: [
    {
      name: 'roles-are-siblings',
      comment:
        'A role never imports another role: move what both need below the roles (src/lib, src/operations, …).',
      severity: 'error',
      from: { path: '^src/roles/([^/]+)/' },
      to: { path: '^src/roles/[^/]+/', pathNot: '^src/roles/$1/' },
    },
    {
      name: 'a-role-is-entered-by-its-index',
      comment:
        'The runtime and the CLI reach a role through its entry (src/roles/<role>/index.ts) and the shared src/roles/role.ts, never its internals.',
      severity: 'error',
      from: { path: '^src/', pathNot: '^src/roles/' },
      to: { path: '^src/roles/[^/]+/', pathNot: '^src/roles/[^/]+/index\\.ts$' },
    },
    {
      name: 'only-mq-talks-to-the-broker',
      comment: 'amqplib is used only in src/mq/ (channels, publisher, consumer, stats, taken messages).',
      severity: 'error',
      from: { path: '^src/', pathNot: ['^src/mq/', '\\.test\\.ts$'] },
      to: { path: 'node_modules/amqplib/' },
    },
    {
      name: 'layers-below-the-roles',
      comment: 'Shared layers never import a role, the runtime that composes them, or the CLI.',
      severity: 'error',
      from: { path: '^src/(domain|lib|config|db|mq|observability|privacy|http|operations)/' },
      to: { path: '^src/(roles|runtime|cli)/|^src/cli\\.ts$' },
    },
    {
      name: 'domain-is-pure',
      comment: 'src/domain is pure code: no I/O, no other layer.',
      severity: 'error',
      from: { path: '^src/domain/' },
      to: { path: '^src/(?!domain/)' },
    },
    {
      name: 'no-circular',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    parser: 'swc',
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
    },
    exclude: { path: '\\.test\\.ts$' },
  },
}
