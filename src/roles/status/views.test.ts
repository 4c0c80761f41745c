import { describe, expect, it } from 'vitest'
import type { QueueRow } from './live.js'
import { queuesFragment } from './views.js'

const row = (kind: QueueRow['kind'], messages: number | null): QueueRow => ({
  name: kind,
  queue: `sabt.${kind}`,
  kind,
  messages,
  consumers: 0,
  change_per_s: 0,
  drain_s: null,
})

describe('queues fragment', () => {
  it('marks dead-letter queues that hold messages, and says how to replay intake dead letters', () => {
    const some = queuesFragment([row('intake', 10), row('intake_dead', 3), row('dead', 0)], true)
    expect(some).toMatch(/data-kind="intake_dead" class="bad"/)
    expect(some).toMatch(/data-kind="dead" class=""/)
    expect(some).toContain('sabt dead replay --intake')
    const none = queuesFragment([row('intake', 10), row('intake_dead', 0)], true)
    expect(none).not.toContain('sabt dead replay --intake')
  })
})
