import { afterAll, describe, expect, it } from 'vitest'
import { Cluster } from './support/cluster.js'
import { dropCluster } from './support/verify.js'

// The harness itself: a scenario must fail on any exit it did not cause (issue 16, item 11 — a
// checker that crashed on a PostgreSQL restart was restarted by the harness and passed).
describe('chaos harness', () => {
  const cluster = new Cluster()
  afterAll(async () => {
    await cluster.stopAll()
    await dropCluster(cluster)
  })

  it('tells an exit the scenario caused from a role that died by itself, and says why', async () => {
    await cluster.prepare()
    await cluster.start('gateway0', 'gateway')
    await cluster.start('gateway1', 'gateway')
    await cluster.kill('gateway0') // the scenario's own doing
    expect(cluster.crashes()).toEqual([])

    // Something else ends gateway1 (as an unhandled error would): not the scenario.
    const pid = cluster.pid('gateway1')
    process.kill(pid, 'SIGABRT')
    const until = Date.now() + 10_000
    while (cluster.procs.get('gateway1')!.child && Date.now() < until)
      await new Promise((r) => setTimeout(r, 50))
    const crashes = cluster.crashes()
    expect(crashes).toHaveLength(1)
    expect(crashes[0]).toMatch(
      new RegExp(`^gateway1 \\(gateway, pid ${pid}\\) exited by itself with signal SIGABRT`),
    )
    expect(cluster.exits.map((e) => [e.name, e.caused])).toEqual([
      ['gateway0', true],
      ['gateway1', false],
    ])
  })
})
