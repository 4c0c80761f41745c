/**
 * Top self-time functions of a V8 CPU profile (node --cpu-prof), grouped by function and file:
 *   npx tsx bench/profile-top.ts bench/results/profiles/<stamp>/gateway.cpuprofile [N]
 */
import { readFileSync } from 'node:fs'

interface Node {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  hitCount?: number
  children?: number[]
}
const file = process.argv[2]
if (!file) {
  process.stderr.write('usage: tsx bench/profile-top.ts FILE.cpuprofile [N]\n')
  process.exit(2)
}
const top = Number(process.argv[3] ?? 30)
const p = JSON.parse(readFileSync(file, 'utf8')) as { nodes: Node[]; samples: number[] }
const total = p.samples.length
const self = new Map<string, number>()
const byFile = new Map<string, number>()
for (const n of p.nodes) {
  const hits = n.hitCount ?? 0
  if (!hits) continue
  const url = n.callFrame.url.replace(/^file:\/\//, '').replace(/.*node_modules\//, '~/')
  const key = `${n.callFrame.functionName || '(anonymous)'}  ${url.split('/').slice(-2).join('/')}:${n.callFrame.lineNumber + 1}`
  self.set(key, (self.get(key) ?? 0) + hits)
  const pkg = url.startsWith('~/')
    ? url
        .split('/')
        .slice(1, url.split('/')[1]!.startsWith('@') ? 3 : 2)
        .join('/')
    : url.includes('/dist/')
      ? `sabt:${url.split('/dist/')[1]}`
      : url || n.callFrame.functionName
  byFile.set(pkg, (byFile.get(pkg) ?? 0) + hits)
}
const pct = (h: number) => `${((100 * h) / total).toFixed(1).padStart(5)} %`
process.stdout.write(`${total} samples\n\nself time by function:\n`)
for (const [k, h] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top))
  process.stdout.write(`${pct(h)}  ${k}\n`)
process.stdout.write('\nself time by package / file:\n')
for (const [k, h] of [...byFile].sort((a, b) => b[1] - a[1]).slice(0, top))
  process.stdout.write(`${pct(h)}  ${k}\n`)
