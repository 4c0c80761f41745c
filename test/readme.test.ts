import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { EnvSchema } from '../src/config/env.js'

describe('README', () => {
  const readme = readFileSync('README.md', 'utf8')

  it('documents every environment variable Sabt reads', () => {
    const missing = Object.keys(EnvSchema.properties).filter((k) => !readme.includes(`\`${k}\``))
    expect(missing).toEqual([])
  })

  it('has the two-command quick start', () => {
    expect(readme).toContain('npm ci && npm start')
    expect(readme).toMatch(/^npm test/m)
  })
})
