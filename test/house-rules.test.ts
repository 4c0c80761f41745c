import { execFile } from 'node:child_process'
import { resolve } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

// The house rules (.dependency-cruiser.cjs) run in `npm test` over src/. This proves they bite:
// run over a fixture that breaks each of them, they must name every break.
const run = promisify(execFile)
const root = resolve(import.meta.dirname, '..')

async function depcruise(cwd: string): Promise<{ code: number; out: string }> {
  try {
    const { stdout } = await run(
      resolve(root, 'node_modules/.bin/depcruise'),
      ['src', '--config', resolve(root, '.dependency-cruiser.cjs'), '--output-type', 'err'],
      { cwd },
    )
    return { code: 0, out: stdout }
  } catch (err) {
    const e = err as { code: number; stdout: string }
    return { code: e.code, out: e.stdout }
  }
}

describe('house rules', () => {
  it("refuse an import between roles, amqplib outside src/mq/, a layer importing a role, a role's internals from outside it, and a cycle", async () => {
    const r = await depcruise(resolve(root, 'test/fixtures/house-rules'))
    expect(r.code).not.toBe(0)
    expect(r.out).toMatch(
      /roles-are-siblings: src\/roles\/gateway\/index\.ts → src\/roles\/checker\/index\.ts/,
    )
    expect(r.out).toMatch(/only-mq-talks-to-the-broker: src\/roles\/gateway\/index\.ts → .*amqplib/)
    expect(r.out).toMatch(/layers-below-the-roles: src\/db\/pool\.ts → src\/roles\/checker\/index\.ts/)
    expect(r.out).toMatch(
      /a-role-is-entered-by-its-index: src\/runtime\/start\.ts → src\/roles\/checker\/queue\.ts/,
    )
    expect(r.out).toMatch(/no-circular/)
  })

  it('hold over Sabt itself', async () => {
    const r = await depcruise(root)
    expect(r.out).toMatch(/no dependency violations/)
    expect(r.code).toBe(0)
  })
})
