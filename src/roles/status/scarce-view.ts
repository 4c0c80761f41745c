import type { SabtConfig } from '../../config/campaigns.js'
import { type CampaignCounts, campaignCounts, drawState, findDraw, releaseHistory } from '../../db/draws.js'
import { readWatermark } from '../../db/intake-watermark.js'
import type { Pool } from '../../db/pool.js'
import { fmtCount, html } from './views.js'

export interface ScarceRow {
  campaign: string
  allocation: 'first_come' | 'lottery'
  capacity: number
  counts: CampaignCounts
  draw: string
  commitment: string | null
  releases: { released: string; promoted: string | null; by: string; at: Date }[]
}

/** Per scarce campaign (decision 019): places, draw state, release history — ids only, no personal data. */
export async function scarceRows(pool: Pool, config: SabtConfig): Promise<ScarceRow[]> {
  const rows: ScarceRow[] = []
  // first_come places are final below the intake watermark (decision 022): shown with its lag.
  const w = await readWatermark(pool)
  const firstCome = w
    ? `first come, final to ${w.toISOString().slice(11, 19)} UTC (${Math.max(0, Math.round((Date.now() - w.getTime()) / 1000))} s behind)`
    : 'first come, nothing final yet'
  for (const c of config.campaigns.values()) {
    if (!c.scarce) continue
    const d = c.scarce.allocation === 'lottery' ? await findDraw(pool, c.slug) : null
    rows.push({
      campaign: c.slug,
      allocation: c.scarce.allocation,
      capacity: c.scarce.capacity,
      counts: await campaignCounts(pool, c),
      draw: c.scarce.allocation === 'lottery' ? drawState(d).replace('_', ' ') : firstCome,
      commitment: d?.commitment ?? null,
      releases: await releaseHistory(pool, c.slug, 10),
    })
  }
  return rows
}

export function scarceFragment(rows: ScarceRow[]): string {
  if (rows.length === 0) return html`<p class="note">No campaign declares a capacity.</p>`.s
  return html`<table class="num" id="scarce-table">
<thead><tr><th><bdi>campaign</bdi></th><th><bdi>allocation</bdi></th><th><bdi>capacity</bdi></th><th><bdi>accepted</bdi></th><th><bdi>unsettled</bdi></th><th><bdi>winners</bdi></th><th><bdi>waiting list</bdi></th><th><bdi>released</bdi></th><th><bdi>draw</bdi></th></tr></thead>
<tbody>
${rows.map(
  (r) =>
    html`<tr data-campaign="${r.campaign}"><td class="name" dir="auto">${r.campaign}</td><td>${r.allocation}</td><td>${fmtCount(r.capacity)}</td><td>${fmtCount(r.counts.accepted)}</td><td>${fmtCount(r.counts.unsettled)}</td><td>${fmtCount(r.counts.winners)}</td><td>${fmtCount(r.counts.waitlisted)}</td><td>${fmtCount(r.counts.released)}</td><td class="draw" title="${r.commitment ? `commitment ${r.commitment}` : ''}">${r.draw}</td></tr>`,
)}
</tbody>
</table>
${rows
  .filter((r) => r.releases.length > 0)
  .map(
    (r) => html`<h3 dir="auto">${r.campaign}: releases <span class="sub">latest first</span></h3>
<table class="releases"><thead><tr><th>released</th><th>place given to</th><th>by</th><th>at (UTC)</th></tr></thead><tbody>
${r.releases.map(
  (x) =>
    html`<tr><td><code>${x.released}</code></td><td>${x.promoted ? html`<code>${x.promoted}</code>` : 'nobody (waiting list empty)'}</td><td dir="auto">${x.by}</td><td>${x.at.toISOString().slice(0, 19).replace('T', ' ')}</td></tr>`,
)}
</tbody></table>`,
  )}`.s
}
