#!/usr/bin/env node
// The numbers the structure work is judged by (issue 12): files per role, imports between roles,
// amqplib importers outside src/mq/, and the longest functions. Run from a checkout's root:
//   node scripts/code-stats.mjs [dir]
import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import swc from '@swc/core'

const root = process.argv[2] ?? process.cwd()
const src = join(root, 'src')

function walk(dir) {
  return readdirSync(dir).flatMap((f) => {
    const p = join(dir, f)
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.ts') && !p.endsWith('.test.ts') ? [p] : []
  })
}
const files = walk(src).map((p) => relative(root, p))

const roles = {}
for (const f of files) {
  const m = /^src\/roles\/([^/]+)\//.exec(f)
  if (m) roles[m[1]] = (roles[m[1]] ?? 0) + 1
}

const roleImports = []
const amqp = []
const fns = []
for (const f of files) {
  const text = readFileSync(join(root, f), 'utf8')
  const own = /^src\/roles\/([^/]+)\//.exec(f)?.[1]
  for (const m of text.matchAll(/from '([^']+)'/g)) {
    const spec = m[1]
    if (spec === 'amqplib' && !f.startsWith('src/mq/')) amqp.push(f)
    if (own && spec.startsWith('.')) {
      const target = join(f, '..', spec)
      const t = /^src\/roles\/([^/]+)\//.exec(target)?.[1]
      if (t && t !== own) roleImports.push(`${f} → ${target}`)
    }
  }
  const ast = swc.parseSync(text, { syntax: 'typescript' })
  const lineOf = (pos) => text.slice(0, pos - ast.span.start).split('\n').length
  const visit = (node, name) => {
    if (!node || typeof node !== 'object') return
    if (Array.isArray(node)) {
      for (const n of node) visit(n, name)
      return
    }
    let label = name
    if (node.type === 'FunctionDeclaration' || node.type === 'ClassMethod' || node.type === 'PrivateMethod')
      label = node.identifier?.value ?? node.key?.value ?? node.key?.id?.value ?? name
    if (node.type === 'VariableDeclarator' && node.id?.type === 'Identifier') label = node.id.value
    if (
      [
        'FunctionDeclaration',
        'FunctionExpression',
        'ArrowFunctionExpression',
        'ClassMethod',
        'PrivateMethod',
      ].includes(node.type) &&
      node.span
    ) {
      const lines = lineOf(node.span.end) - lineOf(node.span.start) + 1
      fns.push({ file: f, name: label ?? '(anonymous)', lines })
    }
    for (const [k, v] of Object.entries(node)) if (k !== 'span' && v && typeof v === 'object') visit(v, label)
  }
  visit(ast.body, undefined)
}
fns.sort((a, b) => b.lines - a.lines)
console.log(
  JSON.stringify(
    {
      files: files.length,
      roles,
      role_imports: roleImports,
      amqplib_outside_mq: amqp,
      longest: fns.slice(0, 8),
    },
    null,
    1,
  ),
)
